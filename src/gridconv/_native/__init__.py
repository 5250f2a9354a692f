"""Compiled kernels for what torch's ops can only do in many passes over memory; optional.

The C sources next to this file are compiled on first use with the machine's C compiler
(``$CC``, else ``gcc``) for this CPU, into a per-user cache (``$GRIDCONV_CACHE``, else
``$XDG_CACHE_HOME/gridconv``, else ``~/.cache/gridconv``; where that cannot be written, a
directory of the user's own in the system's temporary directory), and loaded with ctypes. They run
on torch's own OpenMP threads. Where anything is missing (no compiler, torch not built with
GNU OpenMP, a failed build or self-check) :func:`library` returns None and callers use their
torch ops instead: the results are the same either way. ``GRIDCONV_NATIVE=0`` turns the
compiled kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import grad as nn_grad
from torch.utils._python_dispatch import _disable_current_modes

from gridconv import _memo
from gridconv._shapes import ceil_div

SOURCE = Path(__file__).with_name("overlap_save.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=gnu11")
BUILD_TIMEOUT_S = 120


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$GRIDCONV_CACHE``, ``$XDG_CACHE_HOME/gridconv`` or
    ``~/.cache/gridconv``."""
    if os.environ.get("GRIDCONV_CACHE"):
        return Path(os.environ["GRIDCONV_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gridconv"


def _cache_dir_or_none() -> Path | None:
    try:
        return cache_dir()
    except (RuntimeError, KeyError):  # no home directory to be found
        return None


def _private_temp_dir() -> Path | None:
    """A directory only this user can write, in the system's temporary directory: where the
    kernels go when the cache cannot be written (a library is never loaded from a place
    others could have put it)."""
    if not hasattr(os, "getuid"):
        return None
    path = Path(tempfile.gettempdir()) / f"gridconv-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.stat()
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return path


def _uses_gnu_openmp() -> bool:
    """Whether torch runs its threads on GNU OpenMP and that runtime is loaded, so that the
    kernels' ``libgomp.so.1`` resolves to it, not to a second pool of threads."""
    if not sys.platform.startswith("linux"):
        return False
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return any(line.endswith("/libgomp.so.1") for line in maps.splitlines())


def _machine() -> str:
    """What ``-march=native`` compiles for: the CPU's model and instruction-set flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = ("model name", "flags", "Features")
    return "\n".join(sorted({line for line in lines if line.startswith(wanted)}))


def _build(compiler: str, target: Path) -> None:
    """Compile :data:`SOURCE` into ``target``, atomically: a temporary file, then a rename,
    so that a concurrent process never loads half a library."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *FLAGS, "-o", tmp, str(SOURCE)],
            check=True,
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@_memo.cached(maxsize=1)
def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where they cannot be had."""
    if os.environ.get("GRIDCONV_NATIVE", "1") == "0" or not _uses_gnu_openmp():
        return None
    compiler = os.environ.get("CC") or shutil.which("gcc")
    if compiler is None:
        return None
    key = hashlib.sha256(
        "\n".join([SOURCE.read_text(), compiler, *FLAGS, _machine()]).encode()
    ).hexdigest()[:16]
    name = f"native-{platform.machine()}-{key}.so"
    lib = None
    error: Exception | None = None
    for directory in (_cache_dir_or_none(), _private_temp_dir()):
        try:
            if directory is None:
                continue
            target = directory / name
            if not target.exists():
                _build(compiler, target)
            lib = ctypes.CDLL(str(target))
            break
        except OSError as failure:  # an unwritable cache, say: the next directory
            error = failure
        except subprocess.SubprocessError as failure:  # the compiler failed: give up
            error = failure
            break
    if lib is None:
        warnings.warn(
            f"gridconv: compiled kernels unavailable ({error}); using torch ops", stacklevel=3
        )
        return None
    lib.gridconv_overlap_save.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 9
    lib.gridconv_overlap_save.restype = ctypes.c_int
    lib.gridconv_backward.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 9
    lib.gridconv_backward.restype = ctypes.c_int
    # checked on real tensors even when first asked under a tracer's dispatch mode (a fake
    # tensor mode would fail the check, and the answer is kept for the process)
    with _disable_current_modes():
        passed = _self_check(lib)
    if not passed:
        warnings.warn(
            "gridconv: compiled kernels failed their self-check; using torch ops", stacklevel=3
        )
        return None
    return lib


def available() -> bool:
    """Whether the compiled kernels can be used (builds them on first call)."""
    return library() is not None


# Output channels per pass of the mixing, and the bytes of workspace a thread may take.
OUT_BLOCK = 4
WORKSPACE_MAX_BYTES = 16 * 2**20


def workspace_bytes(length: int, in_channels: int) -> int:
    """Per thread: two length/2-point FFT buffers, the spectra of all input channels and of
    four output channels, 8 lanes of complex float32 each."""
    bins = length // 2 + 1
    return 64 * (length + (in_channels + OUT_BLOCK) * bins)


def pack(spectrum: Tensor, groups: int) -> Tensor:
    """A kernel's spectrum laid out for :func:`overlap_save`.

    Args:
        spectrum: ``conj(rfft(w, n=L)) / (2 * L)``, complex64, ``(C_out, C_in / groups, F)``
            with ``F = L/2 + 1`` (the 1/2 and 1/L of the transforms folded in).
        groups: as in :func:`gridconv.conv`.

    Shape:
        ``(C_out, Cg, F)`` complex -> ``(G, ceil(Og / 4), F, Cg, 4, 2)`` float32, ``Og =
        C_out / groups`` (padded with zero output channels to a multiple of 4).
    """
    O, Cg, F = spectrum.shape
    Og = O // groups
    blocks = ceil_div(Og, OUT_BLOCK)
    padded = spectrum.new_zeros(groups, blocks * OUT_BLOCK, Cg, F)
    padded[:, :Og] = spectrum.view(groups, Og, Cg, F)
    padded = padded.view(groups, blocks, OUT_BLOCK, Cg, F).permute(0, 1, 4, 3, 2)
    return torch.view_as_real(padded.contiguous()).contiguous()


def overlap_save(
    x: Tensor, packed: Tensor, out_channels: int, groups: int, block: int, length: int, valid: int
) -> Tensor:
    """Correlate a padded 1-D signal with a packed kernel by overlap-save FFTs of ``length``
    points (a power of two), ``block`` outputs per tile (``length - block + 1`` taps).

    Args:
        x: the padded input, float32, contiguous, at least ``(tiles - 1) * block + length``
            long, ``tiles = ceil(valid / block)``.
        packed: the kernel, from :func:`pack`.
        out_channels, groups: as in :func:`gridconv.conv`.
        block, length: outputs per tile, and transform length.
        valid: outputs per row.

    Shape:
        ``(N, C_in, n) -> (N, C_out, valid)``.
    """
    lib = library()
    if lib is None:
        raise RuntimeError("gridconv's compiled kernels are not available")
    return _overlap_save(lib, x, packed, out_channels, groups, block, length, valid)


def _overlap_save(
    lib: ctypes.CDLL,
    x: Tensor,
    packed: Tensor,
    out_channels: int,
    groups: int,
    block: int,
    length: int,
    valid: int,
) -> Tensor:
    N, C, row = x.shape
    tiles = _check(x, block, length, valid)
    _check_packed(packed, out_channels, groups, length)
    out = x.new_empty(N, out_channels, valid)
    failed = lib.gridconv_overlap_save(
        x.data_ptr(), packed.data_ptr(), out.data_ptr(),
        N, C, out_channels, groups, row, tiles, block, length, valid,
    )  # fmt: skip
    if failed:
        raise MemoryError(f"gridconv: no memory for {workspace_bytes(length, C)} B of workspace")
    return out


def accumulator_bytes(length: int, in_channels: int, out_channels: int, groups: int) -> int:
    """Per thread, what :func:`backward` takes beyond :func:`workspace_bytes` for the kernel
    gradient: a sum per channel pair and bin, 8 lanes of complex float32 each."""
    return 64 * (length // 2 + 1) * out_channels * in_channels // groups


def backward(
    x: Tensor | tuple[int, int, int],
    g: Tensor,
    packed: Tensor,
    groups: int,
    block: int,
    length: int,
    valid: int,
    want: tuple[bool, bool] = (True, True),
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of :func:`overlap_save`'s input and kernel, given the output's
    gradient ``g``, by the compiled kernel, from one transform of each of ``g``'s tiles:

    - the padded input's: per tile, the gradient's spectrum times the kernel's, inverted
      and overlap-added;
    - the kernel's: per channel pair, the sum over tiles of the gradient's tile spectrum,
      conjugated, times the input's; then the first ``length - block + 1`` points of its
      inverse transform.

    Args:
        x: the padded input, as :func:`overlap_save` took it; where only the input's
            gradient is wanted, its shape will do.
        g: the output's gradient, float32, contiguous, ``valid`` long.
        packed: the kernel, from :func:`pack`, as :func:`overlap_save` took it.
        groups, block, length, valid: as in :func:`overlap_save`.
        want: which of the two gradients to compute (None for the other).

    Shape:
        ``(N, C_in, n), (N, C_out, valid) -> (N, C_in, n), (C_out, C_in / groups,
        length - block + 1)``.
    """
    lib = library()
    if lib is None:
        raise RuntimeError("gridconv's compiled kernels are not available")
    return _backward(lib, x, g, packed, groups, block, length, valid, want)


def _check(x: Tensor | tuple[int, ...], block: int, length: int, valid: int) -> int:
    """Validate the lengths and the padded input (or its shape) of a compiled call; the
    tiles per row."""
    if length < 16 or length & (length - 1) or not 1 <= block <= length:
        raise ValueError(
            f"length, block: expected a power of two >= 16 and 1 <= block <= length, "
            f"got {length} and {block}"
        )
    tiles = ceil_div(valid, block)
    shape = x if isinstance(x, tuple) else tuple(x.shape)
    if (
        len(shape) != 3
        or (tiles - 1) * block + length > shape[-1]
        or (isinstance(x, Tensor) and (x.dtype != torch.float32 or not x.is_contiguous()))
    ):
        raise ValueError(
            f"x: expected a contiguous float32 (N, C, >= {(tiles - 1) * block + length}) "
            f"input, got {getattr(x, 'dtype', 'a shape')} {shape}"
        )
    return tiles


def _backward(
    lib: ctypes.CDLL,
    x: Tensor | tuple[int, int, int],
    g: Tensor,
    packed: Tensor,
    groups: int,
    block: int,
    length: int,
    valid: int,
    want: tuple[bool, bool],
) -> tuple[Tensor | None, Tensor | None]:
    if isinstance(x, tuple) and want[1]:
        raise ValueError("x: the kernel's gradient needs the padded input, not its shape")
    tiles = _check(x, block, length, valid)
    N, C, row = x if isinstance(x, tuple) else x.shape
    O = g.shape[1]
    _check_packed(packed, O, groups, length)
    if g.dtype != torch.float32 or not g.is_contiguous() or tuple(g.shape) != (N, O, valid):
        raise ValueError(
            f"g: expected a contiguous float32 ({N}, C_out, {valid}) gradient, "
            f"got {g.dtype} {tuple(g.shape)}"
        )
    gx = g.new_empty(N, C, row) if want[0] else None
    sums = g.new_zeros(groups, length // 2 + 1, O // groups, C // groups, 2) if want[1] else None
    failed = lib.gridconv_backward(
        x.data_ptr() if isinstance(x, Tensor) else None, g.data_ptr(), packed.data_ptr(),
        None if gx is None else gx.data_ptr(), None if sums is None else sums.data_ptr(),
        N, C, O, groups, row, tiles, block, length, valid,
    )  # fmt: skip
    if failed:
        need = workspace_bytes(length, C + O) + accumulator_bytes(length, C, O, groups)
        raise MemoryError(f"gridconv: no memory for {need} B of workspace")
    if sums is None:
        return gx, None
    # (G, F, Og, Cg) sums of spectra twice the true ones -> (O, Cg, taps)
    sums = torch.view_as_complex(sums).permute(0, 2, 3, 1).reshape(O, C // groups, -1)
    return gx, torch.fft.irfft(sums, n=length)[..., : length - block + 1] / 4


def _check_packed(packed: Tensor, out_channels: int, groups: int, length: int) -> None:
    expected = (groups, ceil_div(out_channels // groups, OUT_BLOCK), length // 2 + 1)
    if packed.dtype != torch.float32 or tuple(packed.shape[:3]) != expected:
        raise ValueError(
            f"packed: expected float32 ({', '.join(map(str, expected))}, C_in/groups, 4, 2) "
            f"from pack(), got {packed.dtype} {tuple(packed.shape)}"
        )


def _self_check(lib: ctypes.CDLL) -> bool:
    """Whether the compiled overlap-save and its kernel gradient agree with torch's
    convolution on small problems."""
    generator = torch.Generator().manual_seed(0)
    for N, C, O, groups, n, K, L in ((2, 6, 10, 2, 100, 7, 16), (1, 3, 5, 1, 300, 20, 64)):
        x = torch.randn(N, C, n, generator=generator)
        w = torch.randn(O, C // groups, K, generator=generator)
        block = L - K + 1
        valid = n - K + 1
        tiles = ceil_div(valid, block)
        xp = torch.nn.functional.pad(x, (0, (tiles - 1) * block + L - n))
        spectrum = torch.fft.rfft(w, n=L).conj_physical() / (2 * L)
        packed = pack(spectrum, groups)
        y = _overlap_save(lib, xp, packed, O, groups, block, L, valid)
        g = torch.randn(N, O, valid, generator=generator)
        gx, gw = _backward(lib, xp, g, packed, groups, block, L, valid, (True, True))
        if gx is None or gw is None:
            return False
        refs = (
            torch.nn.functional.conv1d(x, w, groups=groups),
            nn_grad.conv1d_input(x.shape, w, g, groups=groups),
            nn_grad.conv1d_weight(x, w.shape, g, groups=groups),
        )
        for found, ref in zip((y, gx[..., :n], gw), refs):
            if not torch.allclose(found, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item()):
                return False
        if gx[..., n:].abs().max() > 1e-4 * refs[1].abs().max():  # past the input: no taps
            return False
    return True
