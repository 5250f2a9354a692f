"""A PyTorch inductor performance issue (CPU, vectorised C++), reduced without gridconv: a
kernel that writes a boolean tensor runs many times slower than ATen's. ReLU trained under
``torch.compile`` meets it: inductor keeps ``x <= 0`` as a boolean mask for the backward
instead of ReLU's output.

  .venv/bin/python benchmarks/repro/inductor_bool_mask.py          # vectorised (the default)
  .venv/bin/python benchmarks/repro/inductor_bool_mask.py scalar   # cpp.simdlen=1

Measured on the 2-core AMD EPYC (AVX-512) of this project, torch 2.13, medians of 30 on
8 x 16 x 64 x 64 floats: ``x <= 0`` took 2.8-4.6 ms compiled against 0.12-0.19 ms eager (25x),
and 0.1 ms compiled with ``cpp.simdlen=1`` (scalar code); ``x * 2``, a float result, runs at
ATen's speed; ReLU wanting a gradient (its output and the mask) took 2.6-3.3 ms compiled
against 0.03 ms eager, and still 1.3 ms with scalar code. The vectorised kernel stores each
16 lanes' comparison through ``VecMask<float, 1>::store`` into ``bool``. In a training step
of two FFT-sized gridconv layers with ReLU, the mask's kernels (written in the forward, read
in the backward) took about 3.5 ms of a 21 ms compiled step; torch's own compiled network
pays the same. With SiLU instead, nothing is kept as a boolean.
"""

import statistics
import sys
import time

import torch

if sys.argv[1:] == ["scalar"]:
    torch._inductor.config.cpp.simdlen = 1


def median_ms(fn, x: torch.Tensor, rounds: int = 30) -> float:
    fn(x), fn(x)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


x = torch.randn(8, 16, 64, 64)
cases = {
    "x <= 0 (a boolean result)": lambda x: x <= 0,
    "x * 2 (a float result)": lambda x: x * 2,
    "relu, wanting a gradient": lambda x: torch.relu(x),
}
for name, fn in cases.items():
    torch._dynamo.reset()
    compiled = torch.compile(fn)
    arg = x.requires_grad_(name.startswith("relu"))
    eager, fast = median_ms(fn, arg), median_ms(compiled, arg)
    print(f"{name:<28} eager {eager:6.3f} ms   compiled {fast:6.3f} ms   ({fast / eager:4.1f}x)")
