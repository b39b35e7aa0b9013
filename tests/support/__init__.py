"""Helpers for the tests and the benchmarks (bench/ puts tests/ on its path): a real TorchServe
on loopback (`torchserve`), and a count of matrix multiply-adds (`matmul_work`). Not shipped."""
