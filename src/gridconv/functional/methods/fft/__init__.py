"""The FFT method (Goodfellow et al. 2016, sec. 9.8): convolution as a product of spectra.

One subpackage, one part a file:

- :mod:`.plan`: transform lengths, overlap-save tiles, the work they cost, and the method's
  cost model (constants, time, memory);
- :mod:`.transforms`: the kernel's and the input's transforms on torch's FFTs, the channel
  mixing, the output's assembly;
- :mod:`.grad`: the backward pass in the frequency domain;
- :mod:`.run`: the method as it runs, eager (its ``autograd.Function`` s, the kept
  transforms) and traced; :mod:`.ops`: torch's-FFT path as custom ops for traced programs;
- :mod:`.overlap_save`: the compiled 1-D overlap-save path (gridconv._native), with its own
  rule of when it applies and its own cost model; :mod:`.overlap_save_ops`: its custom ops.
"""

from __future__ import annotations

from gridconv.functional.methods.base import Method
from gridconv.functional.methods.fft import overlap_save, plan, run

METHOD = Method(
    name="fft",
    run=run.run,
    seconds=plan.seconds,
    memory=plan.memory,
    keeps_kernel=plan.spectrum_kept,
    portable=False,  # complex tensors: auto takes it in no program for other runtimes
    constants={"cpu": (plan.CPU, overlap_save.CPU), "cuda": (plan.CUDA,)},
)

__all__ = ["METHOD"]
