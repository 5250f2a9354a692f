"""Two checkouts of gridconv side by side: auto's choices and times, old against new.

For a redesign that must change no behaviour. Each side runs in its own Python process
(``PYTHONPATH=<tree>/src``).

  python benchmarks/compare_trees.py OLD_TREE NEW_TREE [--rounds 7]

It prints (1) every case of ``gridconv bench``'s inference and train suites, and a few
hundred random shapes, where auto's choice (forward and training) differs between the
trees, and (2) the time of a forward call and of a forward + backward step of 6 shapes,
each tree's median and their ratio: two long-lived processes, one per tree, run one call
at a time in turn (in a random order), so that both meet the machine in the same state.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys

# (name, x shape, w shape, groups)
SHAPES = [
    ("3x3 N8 C16 O32 64x64", (8, 16, 64, 64), (32, 16, 3, 3), 1),
    ("9x9 N4 C16 O16 128x128", (4, 16, 128, 128), (16, 16, 9, 9), 1),
    ("depthwise 7x7 N8 C64 56x56", (8, 64, 56, 56), (64, 1, 7, 7), 64),
    ("1-D K64 N4 C8 L16384", (4, 8, 16384), (8, 8, 64), 1),
    ("31x31 N1 C1 256x256", (1, 1, 256, 256), (1, 1, 31, 31), 1),
    ("3-D 3x3x3 N1 C4 32^3", (1, 4, 32, 32, 32), (4, 4, 3, 3, 3), 1),
]

CHOICES = r"""
import json, random, torch
import gridconv as gc
import gridconv.bench
if hasattr(gridconv.bench, "harness"):  # the bench package
    from gridconv.bench import conv as conv_bench, train as train_bench
else:  # before it: modules of their own
    from gridconv import bench as conv_bench, bench_train as train_bench
out = {}
def both(key, x, w, groups):
    kw = dict(padding="same", groups=groups)
    out[key] = [gc.functional.auto_method_for(x, w, **kw)]
    with torch.enable_grad():
        out[key].append(gc.functional.auto_method_for(x, w.clone().requires_grad_(), **kw))
for case in conv_bench.cases():
    x, w = case.tensors(torch.Generator().manual_seed(0))
    both("bench " + case.name, x, w, case.groups)
for case in train_bench.SUITE:
    d = len(case.size)
    x = torch.empty(case.batch, case.in_channels, *case.size)
    w = torch.randn(case.out_channels, case.in_channels // case.groups, *[case.kernel] * d)
    both("train " + case.name, x, w, case.groups)
rng = random.Random(0)
for i in range(300):
    d = rng.choice((1, 2, 2, 3))
    n = rng.choice({1: (256, 4096, 65536), 2: (16, 32, 64, 128, 256), 3: (8, 16, 32)}[d])
    k = rng.choice((1, 3, 5, 7, 9, 11, 15, 21, 31))
    c = rng.choice((1, 3, 8, 16, 64))
    groups = c if rng.random() < 0.3 else 1
    o = c if groups > 1 else rng.choice((1, 4, 16, 32))
    if k > n:
        continue
    x = torch.empty(rng.choice((1, 2, 8)), c, *[n] * d)  # its values are never read
    w = torch.randn(o, c // groups, *[k] * d)
    both(f"random {i}: x{tuple(x.shape)} w{tuple(w.shape)} g{groups}", x, w, groups)
print(json.dumps(out))
"""

WORKER = r"""
import json, sys, time, torch
import gridconv as gc
gc.keep_freed_memory()
shapes = json.loads(sys.argv[1])
calls = {}
for i, (x_shape, w_shape, groups) in enumerate(shapes):
    g = torch.Generator().manual_seed(i)
    x, w = torch.randn(x_shape, generator=g), torch.randn(w_shape, generator=g)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    kw = dict(padding="same", groups=groups)

    def forward(x=x, w=w, kw=kw):
        with torch.no_grad():
            gc.conv(x, w, **kw)

    def step(xg=xg, wg=wg, kw=kw):
        xg.grad = wg.grad = None
        gc.conv(xg, wg, **kw).sum().backward()

    calls[f"{i} forward"], calls[f"{i} train"] = forward, step
    for fn in (forward, step, forward, step):  # warm: plans, kept spectra, the C kernel
        fn()
print("ready", flush=True)
for line in sys.stdin:  # a call's name: run it once, answer its seconds
    fn = calls[line.strip()]
    start = time.perf_counter()
    fn()
    print(time.perf_counter() - start, flush=True)
"""


class _Worker:
    """A Python process of one tree that runs the shapes' calls on request, one at a time."""

    def __init__(self, tree: str) -> None:
        # OpenMP's threads sleep as soon as a call ends: spinning, the idle worker's would
        # take the cores from the other's call
        env = {**os.environ, "PYTHONPATH": os.path.join(tree, "src"), "OMP_WAIT_POLICY": "PASSIVE"}
        shapes = json.dumps([[x, w, g] for _, x, w, g in SHAPES])
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, shapes], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout.readline().strip() == "ready"

    def time(self, call: str) -> float:
        self.process.stdin.write(call + "\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def _run(tree: str, code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.path.join(tree, "src")}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the shapes")
    parser.add_argument("--calls", type=int, default=9, help="calls of each side per shape")
    args = parser.parse_args()
    old, new = _run(args.old, CHOICES), _run(args.new, CHOICES)
    differ = [k for k in old if old[k] != new.get(k)]
    print(f"auto's choices (forward, training): {len(old)} cases, {len(differ)} differ")
    for key in differ:
        print(f"  {key}: old {old[key]}, new {new.get(key)}")
    workers = {"old": _Worker(args.old), "new": _Worker(args.new)}
    order = random.Random(0)
    times: dict[tuple[str, str, str], list[float]] = {}
    try:
        for _ in range(args.rounds):
            for i, (name, *_) in enumerate(SHAPES):
                for kind in ("forward", "train"):
                    for _ in range(args.calls):  # old and new in turn, in a random order
                        sides = ["old", "new"]
                        order.shuffle(sides)
                        for side in sides:
                            t = workers[side].time(f"{i} {kind}")
                            times.setdefault((name, kind, side), []).append(t)
    finally:
        for worker in workers.values():
            worker.close()
    print(f"\nmedian of {args.rounds * args.calls} calls each, old and new in turn, ms")
    print(f"{'shape':30} {'pass':8} {'old':>9} {'new':>9} {'new/old':>8}")
    for name, *_ in SHAPES:
        for kind in ("forward", "train"):
            o = statistics.median(times[(name, kind, "old")]) * 1e3
            n = statistics.median(times[(name, kind, "new")]) * 1e3
            print(f"{name:30} {kind:8} {o:9.3f} {n:9.3f} {n / o:8.3f}")


if __name__ == "__main__":
    main()
