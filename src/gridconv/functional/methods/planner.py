"""``method="auto"``: which algorithm computes a convolution fastest, per shape.

By default each method's cost model (in its module beside this one), calibrated on a 2-core
x86 CPU (benchmarks/calibrate.py), predicts
the time of each method in microseconds of arithmetic; it costs a few microseconds and its
answer is memoised per shape. Inside ``with planning("measure"):`` the candidates are timed
once per (shape, dtype, device) and the winner is cached, as ``torch.backends.cudnn.benchmark``
and FFTW's planner do; ``wisdom=PATH`` keeps that cache in a JSON file between runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from gridconv import _memo
from gridconv._checks import check_choice, describe
from gridconv.functional._spec import ConvSpec
from gridconv.functional.methods import REGISTRY, direct, fft, separable
from gridconv.functional.methods import compiled as overlap_save

__all__ = [
    "MODES",
    "clear",
    "constants",
    "current_mode",
    "planning",
    "set_constants",
]

MODES = ("estimate", "measure")
WISDOM_FORMAT = "gridconv-wisdom"
WISDOM_VERSION = 2  # 2: training passes keyed apart (1 had forward keys only: still read)
WISDOM_READ = (1, 2)

# --- the cost model -------------------------------------------------------------------
# Each method keeps its calibrated constants and its cost in its own module; these names are
# the planner's view of them.
direct_seconds = direct.seconds
fft_seconds = fft.seconds
separable_seconds = separable.seconds
_MODULES = (direct, fft, overlap_save, separable)


def constants(device: str = "cpu") -> dict[str, float]:
    """Every method's cost-model constants for ``device`` ("cpu" or "cuda"), by name; a
    copy (see :func:`set_constants`)."""
    found: dict[str, float] = {}
    for module in _MODULES:
        found.update(getattr(module, device.upper(), module.CPU))
    return found


def set_constants(values: dict[str, float], device: str = "cpu") -> None:
    """Set cost-model constants by name, each in the module of the method it belongs to
    (what benchmarks/calibrate.py fits)."""
    for name, value in values.items():
        owners = [m for m in _MODULES if name in getattr(m, device.upper(), {})]
        if not owners:
            raise ValueError(f"`values`: no method has a constant {name!r}")
        for module in owners:
            getattr(module, device.upper())[name] = value


def estimates(
    batch: int,
    out_channels: int,
    spec: ConvSpec,
    device: torch.device,
    kept: bool = False,
    compiled: bool = False,
    grads: tuple[bool, bool] = (False, False),
) -> dict[str, float]:
    """Predicted seconds of each method (separable assuming a rank-one kernel; FFT without
    transforming the kernel when its spectrum is ``kept``, by the compiled 1-D kernel when
    ``compiled``): of the forward pass, plus the backward pass for the gradients ``grads``
    wants, of the input and of the kernel, plus, for such a training step, a charge for
    its extra peak memory (see ``MEMORY_SECONDS_PER_BYTE``)."""
    times = {}
    for name, method in REGISTRY.items():
        if not method.plannable(spec):
            continue
        times[name] = method.seconds(
            batch, out_channels, spec, device, kept=kept, compiled=compiled, grads=grads
        )
        if any(grads) and device.type == "cpu":
            times[name] += MEMORY_SECONDS_PER_BYTE * method.memory(batch, out_channels, spec)
    return times


# What a training step's extra peak memory is charged, in seconds per byte: about the cost
# of first touching freshly mapped pages (glibc returns large blocks to the system, so each
# step maps its temporaries anew), and a thumb on the scale for the method that needs less.
# The FFT's kernel spectra (C_out * C_in / groups transforms) make it need several times
# direct's memory with many channels: 79 MB against 16 at N4 C16 O16 128x128 K9, where it
# still wins (29 ms against 39); at 7 x 7 the charge tips the choice to direct (measured
# 23.6 ms against the FFT's 27.1).
MEMORY_SECONDS_PER_BYTE = 1e-10


def wanted_grads(x: Tensor, w: Tensor) -> tuple[bool, bool]:
    """Which gradients the pass that will run computes: of the input, of the kernel."""
    enabled = torch.is_grad_enabled()
    return enabled and x.requires_grad, enabled and w.requires_grad


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

    def clear(self) -> None:
        self.value += 1


_generation = _memo.register("planner: generation", _Generation())


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
    separable: bool,
    kept: bool = False,
    grads: tuple[bool, bool] = (False, False),
) -> str:
    """What a measured choice depends on: shapes, hyper-parameters, dtype and device,
    whether the kernel is exactly separable and its spectrum kept, and the pass (forward
    keys have no pass in them, as in version-1 wisdom files)."""
    return _plan_key(x.device.type, x.dtype, x.shape, w.shape, spec, separable, kept, grads)


@_memo.cached()  # asked on every call under planning("measure")
def _plan_key(
    device: str,
    dtype: torch.dtype,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    spec: ConvSpec,
    separable: bool,
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
            "sep" if separable else "nosep",
            *(["kept"] if kept else []),
            *([pass_name(grads)] if any(grads) else []),
        ]
    )


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


def choose(
    x: Tensor,
    w: Tensor,
    spec: ConvSpec,
    runner: Callable[[str], Callable[[], Tensor]],
    separable: Callable[[], bool],
    kept: bool = False,
) -> str:
    """The method ``conv(method="auto")`` uses for this call.

    Args:
        x, w, spec: the validated, batched convolution.
        runner: gives a zero-argument function that runs a method, when measuring: the
            forward pass, and the backward pass too where ``x`` or ``w`` wants a gradient
            (the pass that will run is the one timed, and the one costed).
        separable: says (lazily) whether the kernel is exactly separable.
        kept: whether the kernel's spectrum is kept between calls (the FFT method then
            does not transform it again).
    """
    mode = _mode.get()
    out_channels = w.shape[0]
    compiled = overlap_save.applies(x, w, spec)
    grads = wanted_grads(x, w)
    if mode == "estimate":
        key = (x.device.type, x.shape[0], out_channels, spec, kept, compiled, grads)
        ranked = _estimated.get(key)
        if ranked is None:
            times = estimates(x.shape[0], out_channels, spec, x.device, kept, compiled, grads)
            if len(_estimated) > 4096:
                _estimated.clear()
            ranked = _estimated.setdefault(key, tuple(sorted(times, key=times.__getitem__)))
        if ranked[0] == "separable" and not separable():
            return ranked[1]
        return ranked[0]
    exact = spec.ndim > 1 and separable()
    measured_key = plan_key(x, w, spec, exact, kept, grads)
    method = _measured.get(measured_key)
    if method is None:
        guesses = estimates(x.shape[0], out_channels, spec, x.device, kept, compiled, grads)
        if not exact:
            guesses.pop("separable", None)
        best_guess = min(guesses.values())
        # Candidates the model puts 30x behind are not worth a (possibly very slow) run.
        candidates = {n: runner(n) for n, guess in guesses.items() if guess <= 30 * best_guess}
        timed = _time(candidates, x.device)
        fallback = min(guesses, key=guesses.__getitem__)
        method = _measured.setdefault(
            measured_key, min(timed, key=timed.__getitem__, default=fallback)
        )
    return method


# --- wisdom files -------------------------------------------------------------------------
def _read_wisdom(path: Path) -> dict[str, str] | None:
    """The entries of a wisdom file; None (with a warning) if it is not a usable one."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):  # nothing saved there yet
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        warnings.warn(
            f"gridconv: ignoring wisdom file {path}: not readable JSON ({err}).", stacklevel=3
        )
        return None
    if not isinstance(data, dict) or data.get("format") != WISDOM_FORMAT:
        warnings.warn(
            f"gridconv: ignoring {path}: not a gridconv wisdom file (no 'format': "
            f"'{WISDOM_FORMAT}').",
            stacklevel=3,
        )
        return None
    entries = data.get("entries")
    if data.get("version") not in WISDOM_READ or not isinstance(entries, dict):
        warnings.warn(f"gridconv: ignoring {path}: wisdom of another version.", stacklevel=3)
        return {}
    valid = tuple(REGISTRY)
    return {k: v for k, v in entries.items() if isinstance(k, str) and v in valid}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (POSIX), so that concurrent savers merge in turn."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: atomic replace alone
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_wisdom(path: Path, entries: dict[str, str]) -> None:
    """Merge ``entries`` into the file at ``path``, atomically (temp file, fsync, rename)."""
    try:
        with _locked(path):
            existing = _read_wisdom(path)
            if existing is None:
                warnings.warn(
                    f"gridconv: left {path} untouched: it is not a wisdom file.", stacklevel=3
                )
                return
            merged = {**existing, **entries}
            text = json.dumps(
                {"format": WISDOM_FORMAT, "version": WISDOM_VERSION, "entries": merged},
                indent=1,
                sort_keys=True,
            )
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
    except OSError as err:
        warnings.warn(f"gridconv: could not save wisdom to {path}: {err}.", stacklevel=3)


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
            _measured.update(_read_wisdom(self._path) or {})
            _generation.clear()
        self._tokens.append(_mode.set(self._mode))

    def __exit__(self, *exc: object) -> None:
        _mode.reset(self._tokens.pop())
        if self._path is not None:
            _write_wisdom(self._path, dict(_measured))


def clear() -> None:
    """Forget every measured and estimated choice of this process."""
    _measured.clear()
    _estimated.clear()
    _generation.clear()
