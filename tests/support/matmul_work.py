"""Count the multiply-adds of the matrix products a block of code runs (mm, addmm, bmm).

For checks of *how much* work a design does, where timings would be noise: a test that the
prefix-only backward multiplies fewer rows, the bench that compares with captum.
(torch.utils.flop_counter's FlopCounterMode tracks modules with hooks that cannot run under
torch.autograd.grad.)
"""

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PRODUCTS = (torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default)


class MatmulWork(TorchDispatchMode):
    """`with MatmulWork() as work: …` then `work.total`. Products with a dimension of `skip`
    (e.g. the vocabulary size) are left out."""

    def __init__(self, skip: int | None = None):
        super().__init__()
        self.skip, self.total = skip, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in PRODUCTS:
            inner = args[-1].shape[-2]
            if self.skip is None or self.skip not in (inner, out.shape[-1]):
                self.total += out.numel() * inner
        return out
