"""A worker gives the heap its requests freed back to the OS (exformer.serving.release_freed_heap)."""

import pytest
import torch

from exformer import serving


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(serving._LIBC is None, reason="glibc ≥ 2.33 only")
def test_freed_activations_go_back_to_the_os_once_past_the_threshold():
    # Blocks under glibc's mmap threshold (like a short request's activations) come from the
    # heap and stay there once freed.
    blocks = [torch.ones(64 << 10, dtype=torch.uint8) for _ in range(2560)]
    del blocks
    held_before = rss_bytes()
    assert serving.release_freed_heap(1024) >= 128 << 20  # under the threshold: kept
    assert rss_bytes() > held_before - (32 << 20)
    assert serving.release_freed_heap(64) >= 128 << 20
    assert rss_bytes() < held_before - (96 << 20)


def test_zero_means_never():
    assert serving.release_freed_heap(0) == 0
