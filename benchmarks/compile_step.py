"""torch.compile and gridconv: one training step of a small ConvNet, compiled against eager,
and against the same network built from torch.nn (eager and compiled); compile time per layer.

  .venv/bin/python benchmarks/compile_step.py          # ~4 min; prints two tables

Three networks, each built twice (gc.nn layers, torch.nn layers; same weights):
- "direct": 3 x 3 convolutions and 2 x 2 max pooling, N32 3x32x32 (auto picks the direct
  method, so gridconv and torch run the same convolutions);
- "fft": 9 x 9 and 11 x 11 "same" convolutions, N8 3x64x64 (auto picks the FFT; torch runs
  its direct convolution); and "fft, SiLU", the same with SiLU for ReLU.
A step is forward, cross-entropy, backward and an SGD update. Candidates run in interleaved
rounds in random order after warm-up (the compiles), medians. Compile time: the first
forward + backward of each layer alone under torch.compile (inductor), after a reset: cold
(inductor's caches off) and with its on-disk cache warm.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

import gridconv as gc


def direct_net(library: str) -> nn.Module:
    if library == "gridconv":
        conv = lambda c, o: gc.nn.Conv2d(c, o, 3, padding="same")  # noqa: E731
        pool = lambda: gc.nn.Pool2d(2)  # noqa: E731
    else:
        conv = lambda c, o: nn.Conv2d(c, o, 3, padding=1)  # noqa: E731
        pool = lambda: nn.MaxPool2d(2)  # noqa: E731
    return nn.Sequential(
        conv(3, 32), nn.ReLU(), pool(),
        conv(32, 64), nn.ReLU(), pool(),
        conv(64, 64), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )  # fmt: skip


def fft_net(library: str, activation: type[nn.Module] = nn.ReLU) -> nn.Module:
    if library == "gridconv":
        conv = lambda c, o, k: gc.nn.Conv2d(c, o, k, padding="same")  # noqa: E731
    else:
        conv = lambda c, o, k: nn.Conv2d(c, o, k, padding="same")  # noqa: E731
    return nn.Sequential(
        conv(3, 16, 9), activation(), conv(16, 16, 11), activation(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


NETS = {
    "direct": (direct_net, (32, 3, 32, 32)),
    "fft": (fft_net, (8, 3, 64, 64)),
    # the same layers with SiLU: inductor keeps no boolean mask of ReLU's for the backward,
    # whose kernels run slowly on this CPU (benchmarks/repro/inductor_bool_mask.py)
    "fft, SiLU": (lambda library: fft_net(library, nn.SiLU), (8, 3, 64, 64)),
}


def stepper(model: nn.Module, params: list, x: torch.Tensor, y: torch.Tensor) -> Callable:
    opt = torch.optim.SGD(params, lr=0.01)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def steps(name: str, rounds: int = 25) -> dict[str, float]:
    make, shape = NETS[name]
    torch.manual_seed(0)
    x, y = torch.randn(shape), torch.randint(0, 10, (shape[0],))
    nets = {lib: make(lib) for lib in ("gridconv", "torch")}
    nets["torch"].load_state_dict(nets["gridconv"].state_dict())
    # torch at its best: also a channels_last copy of its net, given channels_last input
    nets["torch [channels_last]"] = copy.deepcopy(nets["torch"]).to(
        memory_format=torch.channels_last
    )
    x_last = x.to(memory_format=torch.channels_last)
    runs = {}
    for lib, net in nets.items():
        params = list(net.parameters())
        given = x_last if "channels_last" in lib else x
        runs[f"{lib} eager"] = stepper(net, params, given, y)
        runs[f"{lib} compiled"] = stepper(torch.compile(net), params, given, y)
    for run in runs.values():  # warm-up: compiles, caches
        run()
        run()
    times: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(rounds):
        for n in random.sample(list(runs), len(runs)):
            start = time.perf_counter()
            runs[n]()
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


LAYERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "Conv2d 3x3": (lambda: gc.nn.Conv2d(16, 16, 3, padding="same"), (8, 16, 32, 32)),
    "Conv2d 11x11 (fft)": (lambda: gc.nn.Conv2d(16, 16, 11, padding="same"), (8, 16, 64, 64)),
    "Conv1d K64 (compiled kernel)": (lambda: gc.nn.Conv1d(8, 8, 64, padding="same"), (4, 8, 4096)),
    "LocallyConnected2d": (
        lambda: gc.nn.LocallyConnected2d(3, 8, 3, input_size=16),
        (4, 3, 16, 16),
    ),
    "TiledConv2d": (
        lambda: gc.nn.TiledConv2d(3, 8, 3, tile_size=2, padding="same"),
        (4, 3, 16, 16),
    ),
    "DepthwiseSeparableConv2d": (
        lambda: gc.nn.DepthwiseSeparableConv2d(8, 16, 3, padding="same"),
        (4, 8, 16, 16),
    ),
    "Pool2d gaussian": (lambda: gc.nn.Pool2d(3, 2, method="gaussian"), (4, 8, 16, 16)),
    "torch.nn.Conv2d 3x3": (lambda: nn.Conv2d(16, 16, 3, padding=1), (8, 16, 32, 32)),
}


def compile_seconds(make: Callable[[], nn.Module], shape: tuple[int, ...], cold: bool) -> float:
    """The first forward + backward of a fresh layer under torch.compile, after a reset;
    ``cold``: with inductor's caches off, else with its on-disk cache as left warm."""
    torch._dynamo.reset()
    layer, x = make(), torch.randn(shape, requires_grad=True)
    start = time.perf_counter()
    with torch._inductor.config.patch(force_disable_caches=cold):
        torch.compile(layer)(x).sum().backward()
    return time.perf_counter() - start


def main() -> None:
    warnings.simplefilter("ignore")
    gc.keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians in ms")
    for name in NETS:
        t = steps(name)
        g_e, g_c = t["gridconv eager"], t["gridconv compiled"]
        t_e = min(t["torch eager"], t["torch [channels_last] eager"])  # torch at its best
        t_c = min(t["torch compiled"], t["torch [channels_last] compiled"])
        print(f"\n{name} net, one training step")
        for k, v in t.items():
            print(f"  {k:<20} {v * 1e3:8.2f}")
        print(f"  compiled gridconv / eager gridconv   {g_c / g_e:.2f}")
        print(f"  compiled gridconv / compiled torch (best format)   {g_c / t_c:.2f}")
        print(f"  eager gridconv / eager torch (best format)         {g_e / t_e:.2f}")
    print("\ncompile time, first forward + backward of one layer (s): cold, cache warm")
    for name, (make, shape) in LAYERS.items():
        cold = compile_seconds(make, shape, cold=True)
        compile_seconds(make, shape, cold=False)  # fills the cache
        print(f"  {name:<30} {cold:6.2f} {compile_seconds(make, shape, cold=False):6.2f}")


if __name__ == "__main__":
    main()
