"""A PyTorch inductor bug (CPU, vectorised C++), reduced without gridconv: the backward of a
tensor unfolded along two dims writes out of bounds, and the process aborts with ``double free
or corruption`` or ``free(): corrupted unsorted chunks``.

  .venv/bin/python benchmarks/repro/inductor_unfold_backward.py        # aborts (torch 2.13)
  .venv/bin/python benchmarks/repro/inductor_unfold_backward.py scalar # runs: simdlen=1

The generated kernel for ``unfold_backward`` fused with the transposed read of the gradient
adds each element at ``x1 + 40*x0 + 80*x0_inner`` into a 40 x 40 buffer: the inner index
steps 80 where it should step 40, so half the atomic adds land past the buffer's end
(scalar code, ``cpp.simdlen=1``, indexes right). gridconv's FFT cut images into overlap-save
tiles with ``unfold`` and let autograd step back through it; since issue 16 its own backward
never differentiates ``unfold``, and traced programs never see it (see README, "torch.compile,
export and ONNX", known issues).
"""

import sys

import torch

if sys.argv[1:] == ["scalar"]:
    torch._inductor.config.cpp.simdlen = 1


def f(x: torch.Tensor) -> torch.Tensor:
    tiles = x.unfold(2, 40, 32).unfold(3, 40, 32)  # (1, 1, 1, 1, 40, 40): one 40 x 40 tile
    return (tiles * torch.arange(1600.0).view(40, 40)).sum()


x = torch.randn(1, 1, 40, 40, requires_grad=True)
compiled = torch.compile(f)
for _ in range(3):
    compiled(x).backward()
print("no crash")
