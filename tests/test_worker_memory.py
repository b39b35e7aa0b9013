"""A worker gives the heap its requests freed back to the OS (exformer.serving.handler.release_freed_heap),
and imports what it needs to answer, when it needs it."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exformer.serving import handler as serving

ROOT = Path(__file__).resolve().parent.parent


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(serving._LIBC is None, reason="glibc ≥ 2.33 only")
def test_freed_activations_go_back_to_the_os_once_past_the_threshold():
    # Blocks under glibc's mmap threshold (like a short request's activations) come from the
    # heap and stay there once freed.
    blocks = [torch.ones(64 << 10, dtype=torch.uint8) for _ in range(2560)]
    # a block above them keeps them off the heap's top, where free() alone may give them back
    # (glibc's trim threshold rises with the process's earlier large frees: other tests')
    plug = torch.ones(64 << 10, dtype=torch.uint8)  # noqa: F841
    del blocks
    held_before = rss_bytes()
    # The threshold is set from what the heap holds free now: earlier tests in this process
    # may have left far more than these 160 MB in it.
    held_mb = serving.release_freed_heap(1 << 40) >> 20  # asks what is held, never trims
    assert held_mb >= 128
    assert serving.release_freed_heap(held_mb + 1) >= 128 << 20  # under the threshold: kept
    assert rss_bytes() > held_before - (32 << 20)
    assert serving.release_freed_heap(held_mb - 64) >= 128 << 20  # past it: given back
    assert rss_bytes() < held_before - (96 << 20)


def test_zero_means_never():
    assert serving.release_freed_heap(0) == 0


def test_a_worker_imports_no_model_machinery_before_it_loads_a_model():
    """transformers' model classes pull torch._dynamo, inductor's config and sympy (~84 MB of
    every worker, bench/memory.py); importing the handlers must not, nor accelerate (only a
    worker given several devices plans a device map)."""
    code = (
        "import sys; sys.path.insert(0, 'handlers'); import attention_handler, gradients_handler; "
        "print(sorted(m for m in ('transformers', 'transformers.modeling_utils', 'torch._dynamo', 'sympy', "
        "'accelerate') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
