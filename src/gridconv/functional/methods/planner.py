"""``method="auto"``: which algorithm computes a convolution fastest, per shape.

:func:`auto` is the one entry: the dispatcher asks it, and it knows the methods only
through :data:`~gridconv.functional.methods.REGISTRY`. By default each method's cost model
(in its module beside this one), calibrated on a 2-core x86 CPU (benchmarks/calibrate.py),
predicts the time of each method; it costs a few microseconds and its answer is memoised per
shape and kept with the kernel. Inside ``with planning("measure"):`` the candidates are timed
once per (shape, dtype, device) and the winner is cached, as ``torch.backends.cudnn.benchmark``
and FFTW's planner do; ``wisdom=PATH`` keeps that cache in a JSON file between runs
(:mod:`.wisdom`). While tracing, the choice is the cost model's, a constant of the program.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

import torch
from torch import Tensor

from gridconv import _memo
from gridconv._checks import check_choice, describe
from gridconv.functional._spec import ConvSpec
from gridconv.functional._trace import constant, exporting, tracing
from gridconv.functional.methods import REGISTRY, wisdom
from gridconv.functional.methods.base import KernelCache, Workload, cache_for, wanted_grads

__all__ = [
    "MODES",
    "clear",
    "constants",
    "current_mode",
    "planning",
    "set_constants",
]

MODES = ("estimate", "measure")
WISDOM_VERSION = wisdom.VERSION


# --- the cost model ---------------------------------------------------------------------
def constants(device: str = "cpu") -> dict[str, float]:
    """Every method's cost-model constants for ``device`` ("cpu" or "cuda"; another device
    reads the CPU's), by name; a copy (see :func:`set_constants`)."""
    found: dict[str, float] = {}
    for method in REGISTRY.values():
        for table in method.constants.get(device, method.constants.get("cpu", ())):
            found.update(table)
    return found


def set_constants(values: dict[str, float], device: str = "cpu") -> None:
    """Set cost-model constants by name, each in the table of the method it belongs to
    (what benchmarks/calibrate.py fits)."""
    tables = [t for m in REGISTRY.values() for t in m.constants.get(device, ())]
    for name, value in values.items():
        owners = [table for table in tables if name in table]
        if not owners:
            raise ValueError(f"`values`: no method has a constant {name!r}")
        for table in owners:
            table[name] = value


def estimates(
    work: Workload, kept: Collection[str] = (), among: Collection[str] | None = None
) -> dict[str, float]:
    """Predicted seconds of each method (of those ``among``, by default all) that may run
    ``work`` (separable assuming a rank-one kernel; the methods named in ``kept`` without
    preparing their kernel again): of the forward pass, plus the backward pass for the
    gradients ``work.grads`` wants, plus, for such a training step, a charge for its extra
    peak memory (see ``MEMORY_SECONDS_PER_BYTE``)."""
    times = {}
    training = any(work.grads) and work.device == "cpu"
    for name, method in REGISTRY.items():
        if (among is not None and name not in among) or not method.plannable(work.spec):
            continue
        priced = dataclasses.replace(work, kept=name in kept) if kept else work
        times[name] = method.seconds(priced)
        if training:
            times[name] += MEMORY_SECONDS_PER_BYTE * method.memory(priced)
    return times


# What a training step's extra peak memory is charged, in seconds per byte: about the cost
# of first touching freshly mapped pages, and a thumb on the scale for the method that
# needs less (see benchmarks/results/cost-model.md#memory).
MEMORY_SECONDS_PER_BYTE = 1e-10


def pass_name(grads: tuple[bool, bool]) -> str:
    """``"forward"``, or ``"train-x"``, ``"train-w"``, ``"train-xw"``: what is timed."""
    wanted = "x" * grads[0] + "w" * grads[1]
    return f"train-{wanted}" if wanted else "forward"


# --- planning state -------------------------------------------------------------------
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("gridconv_planning", default="estimate")
# key -> winning method, for the whole process
_measured: dict[str, str] = _memo.register("planner: measured choices", {})
# methods, fastest first
_estimated: dict[tuple, tuple[str, ...]] = _memo.register("planner: estimated rankings", {})


class _Generation:
    """A number that changes whenever the planner's choices may (``clear``, a wisdom file
    read): callers key their memos of its answers on it."""

    def __init__(self) -> None:
        self.value = 0

    def advance(self) -> None:
        self.value += 1


_generation = _Generation()
_memo.register("planner: generation", _generation.advance)


def current_mode() -> str:
    """``"estimate"`` or ``"measure"``: how ``method="auto"`` plans here and now."""
    return _mode.get()


def state() -> tuple[str, int]:
    """The planning mode here and now, and a number that changes whenever the planner's
    choices may (``clear``, a wisdom file read): what a memo of its answers must key on."""
    return _mode.get(), _generation.value


def plan_key(
    x: Tensor,
    w: Tensor,
    spec: ConvSpec,
    usable: bool,
    kept: bool = False,
    grads: tuple[bool, bool] = (False, False),
) -> str:
    """What a measured choice depends on: shapes, hyper-parameters, dtype and device,
    whether the methods that check the kernel's values may run (``sep``: the separable
    method, an exactly separable kernel) and whether a prepared kernel is kept, and the
    pass (forward keys have no pass in them, as in version-1 wisdom files)."""
    return _plan_key(x.device.type, x.dtype, x.shape, w.shape, spec, usable, kept, grads)


@_memo.cached()  # asked on every call under planning("measure")
def _plan_key(
    device: str,
    dtype: torch.dtype,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    spec: ConvSpec,
    usable: bool,
    kept: bool,
    grads: tuple[bool, bool] = (False, False),
) -> str:
    return "|".join(
        [
            device,
            str(dtype).replace("torch.", ""),
            "x" + "x".join(map(str, x_shape)),
            "w" + "x".join(map(str, w_shape)),
            "s" + ",".join(map(str, spec.stride)),
            "p" + ",".join(f"{b}-{a}" for b, a in spec.pairs),
            "d" + ",".join(map(str, spec.dilation)),
            f"g{spec.groups}",
            spec.padding_mode,
            "sep" if usable else "nosep",
            *(["kept"] if kept else []),
            *([pass_name(grads)] if any(grads) else []),
        ]
    )


# --- auto's choice ----------------------------------------------------------------------
def auto(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> str:
    """The method ``conv(method="auto")`` uses for this call of a batched, validated ``x``.

    Eagerly, the choice is kept with the kernel (a layer's ``cache``, or the small cache kept
    with ``w``), so that the next call with this kernel and shape skips the planner. While
    tracing, it is the cost model's, from the traced shapes (nothing measured or kept),
    among the methods that run for any kernel values, and the portable ones under
    ``torch.export``.
    """
    grads = wanted_grads(x, w)
    if tracing():
        device = x.device.type
        return _traced_choice(x.shape[0], w.shape[0], spec, device, x.dtype, grads, exporting())
    key = ("auto", state(), x.shape[0], spec, grads)
    return cache_for(cache, w).get(w, key, lambda: choose(x, w, spec, cache))


@constant
def _traced_choice(
    batch: int,
    out_channels: int,
    spec: ConvSpec,
    device: str,
    dtype: torch.dtype,
    grads: tuple[bool, bool],
    portable: bool,
) -> str:
    # only these are priced: under export, nothing of another method runs (the FFT's cost
    # would ask whether its compiled kernel builds)
    allowed = [
        name
        for name, method in REGISTRY.items()
        if method.usable is None and (method.portable or not portable)
    ]
    times = estimates(Workload(batch, out_channels, spec, device, dtype, grads), among=allowed)
    return min(times, key=times.__getitem__)


# --- measuring ---------------------------------------------------------------------------
# A method faster than this (seconds) is called once untimed before each timed call: timed
# right after another method, it pays for what that one left in the caches (measured: a
# 0.48 ms direct 5 x 5 convolution timed at 0.68 ms right after the separable method).
WARM_BELOW = 0.05


def _time(runners: dict[str, Callable[[], Tensor]], device: torch.device) -> dict[str, float]:
    """Median seconds of each runner, timed in interleaved rounds after a warm-up call
    (and, when fast, after an untimed call each: see ``WARM_BELOW``).

    At least 5 rounds, and up to 31 while they take under half a second: a choice made
    once per shape is worth that, and with fewer rounds the noise of a busy machine (5-10 %
    here) picked the slower of two methods 10 % apart. A runner that fails (out of memory, an op
    missing on this device) is left out; one that takes over a second is timed once.
    """

    def settled(run: Callable[[], Tensor]) -> None:
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(run: Callable[[], Tensor]) -> float:
        start = time.perf_counter()
        settled(run)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {}
    warm: set[str] = set()
    for name, run in runners.items():
        try:
            first = timed(run)
        except (RuntimeError, MemoryError):
            continue
        times[name] = [] if first <= 1.0 else [first]
        if first < WARM_BELOW:
            warm.add(name)
    repeat = [name for name, t in times.items() if not t]
    began = time.perf_counter()
    rounds = 0
    while repeat and (rounds < 5 or (rounds < 31 and time.perf_counter() - began < 0.5)):
        for name in repeat:
            if name in warm:  # untimed: the timed call finds the caches as it left them
                settled(runners[name])
            times[name].append(timed(runners[name]))
        rounds += 1
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def choose(x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None) -> str:
    """The planner's choice for this call, by the cost model or (under ``planning("measure")``)
    by timing the candidates; a method with a check of the kernel's values only where the
    check passes. Measuring times the pass that will run: the forward pass, and the
    backward pass too where ``x`` or ``w`` wants a gradient."""
    grads = wanted_grads(x, w)
    work = Workload(x.shape[0], w.shape[0], spec, x.device.type, x.dtype, grads)
    kept = tuple(n for n, m in REGISTRY.items() if m.keeps_kernel(x, w, spec, cache))
    checked = [n for n, m in REGISTRY.items() if m.usable is not None and m.plannable(spec)]

    def usable(name: str) -> bool:
        check = REGISTRY[name].usable
        return check is None or check(w, cache)

    if _mode.get() == "estimate":
        key = (work, kept)
        ranked = _estimated.get(key)
        if ranked is None:
            times = estimates(work, kept)
            if len(_estimated) > 4096:
                _estimated.clear()
            ranked = _estimated.setdefault(key, tuple(sorted(times, key=times.__getitem__)))
        return next(name for name in ranked if usable(name))
    passed = {name: usable(name) for name in checked}
    measured_key = plan_key(x, w, spec, bool(passed) and all(passed.values()), bool(kept), grads)
    method = _measured.get(measured_key)
    if method is None:
        guesses = estimates(work, kept)
        for name, ok in passed.items():
            if not ok:
                guesses.pop(name, None)
        best_guess = min(guesses.values())
        # Candidates the model puts 30x behind are not worth a (possibly very slow) run.
        candidates = {
            name: _runner(REGISTRY[name].run, x, w, spec, cache)
            for name, guess in guesses.items()
            if guess <= 30 * best_guess
        }
        timed = _time(candidates, x.device)
        fallback = min(guesses, key=guesses.__getitem__)
        method = _measured.setdefault(
            measured_key, min(timed, key=timed.__getitem__, default=fallback)
        )
    return method


def _runner(
    run: Callable[..., Tensor], x: Tensor, w: Tensor, spec: ConvSpec, cache: KernelCache | None
) -> Callable[[], Tensor]:
    """A zero-argument function that runs a method as the call will: forward alone, or
    forward and backward on detached aliases (nothing reaches the caller's graph or .grad)."""
    want_x, want_w = wanted_grads(x, w)
    if not (want_x or want_w):

        def forward() -> Tensor:
            with torch.no_grad():
                return run(x, w, spec, cache)

        return forward
    xs, ws = x.detach().requires_grad_(want_x), w.detach().requires_grad_(want_w)

    def train() -> Tensor:
        y = run(xs, ws, spec, None)
        y.backward(torch.ones_like(y))
        xs.grad = ws.grad = None
        return y

    return train


class planning:  # lower case: used like a function, as torch.no_grad is
    """Choose how ``method="auto"`` plans inside the ``with`` block.

    Args:
        mode: ``"estimate"`` (the default outside any block): the cost model, free.
            ``"measure"``: time the candidate methods on the first call of each shape,
            dtype and device, and reuse the winner for the rest of the process.
        wisdom: a JSON file of measured choices: read on entry, merged and written back
            atomically on exit. A corrupt or foreign file, or one that cannot be written,
            gives a warning and is otherwise ignored.

    Example:
        >>> import torch, gridconv as gc
        >>> x, w = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 9, 9)
        >>> with gc.planning("measure"):
        ...     y = gc.conv(x, w, padding="same")  # times direct and fft once, then reuses
    """

    # A class, not a generator: a block costs 1.0 us instead of 1.7, for blocks of one call.
    def __init__(self, mode: str = "estimate", *, wisdom: str | os.PathLike | None = None):
        self._mode = check_choice("mode", mode, MODES)
        self._path = None
        if wisdom is not None:
            if not isinstance(wisdom, str | os.PathLike):
                raise TypeError(f"`wisdom` must be a path, got {describe(wisdom)}.")
            self._path = Path(wisdom)
        self._tokens: list[contextvars.Token] = []

    def __enter__(self) -> None:
        if self._path is not None:
            _measured.update(wisdom.read(self._path, REGISTRY) or {})
            _generation.advance()
        self._tokens.append(_mode.set(self._mode))

    def __exit__(self, *exc: object) -> None:
        _mode.reset(self._tokens.pop())
        if self._path is not None:
            wisdom.write(self._path, dict(_measured), REGISTRY)


def clear() -> None:
    """Forget every measured and estimated choice of this process."""
    _measured.clear()
    _estimated.clear()
    _generation.advance()
