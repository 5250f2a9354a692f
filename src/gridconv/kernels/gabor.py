"""Gabor functions: models of V1 simple cells (sec. 9.10), banks of them, quadrature pairs
for complex cells, and a least-squares fit that says how Gabor-like any kernel is.

The chapter's simple cell (eqs. 9.15-9.17) is

    w(x, y) = alpha * exp(-beta_x x'^2 - beta_y y'^2) * cos(f x' + phi),
    x' =  (x - x0) cos(tau) + (y - y0) sin(tau),
    y' = -(x - x0) sin(tau) + (y - y0) cos(tau),

with ``x`` along the columns (to the right) and ``y`` along the rows (downwards), measured
from the kernel's centre ``((size - 1) / 2)`` in each dim; an even size puts the centre
between the two middle cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gridconv._checks import check_int, describe
from gridconv._shapes import ntuple
from gridconv.kernels.classic import offsets

PARAMETERS = ("alpha", "beta_x", "beta_y", "frequency", "phase", "x0", "y0", "tau")


def _as_tensor(name: str, value: object, positive: bool = False) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number or a tensor, got {describe(value)}.")
    if positive and value <= 0:
        raise ValueError(f"`{name}` must be > 0, got {value}.")
    return torch.tensor(float(value), dtype=torch.float64)


def gabor(
    size: int | Sequence[int],
    *,
    alpha: float | Tensor = 1.0,
    beta_x: float | Tensor,
    beta_y: float | Tensor,
    frequency: float | Tensor,
    phase: float | Tensor = 0.0,
    x0: float | Tensor = 0.0,
    y0: float | Tensor = 0.0,
    tau: float | Tensor = 0.0,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """The chapter's Gabor function (Goodfellow et al. 2016, eqs. 9.15-9.17) on a grid.

    ``w(x, y) = alpha exp(-beta_x x'^2 - beta_y y'^2) cos(f x' + phi)``, ``x'`` and ``y'``
    the coordinates rotated by ``tau`` about ``(x0, y0)``; ``x`` runs along the columns and
    ``y`` down the rows, both from the kernel's centre.

    Args:
        size: cells per side, or ``(rows, columns)``.
        alpha: the amplitude.
        beta_x, beta_y: how fast the envelope falls off along ``x'`` and ``y'`` (> 0).
        frequency: ``f``, radians per cell along ``x'`` (wavelength ``2 pi / f``).
        phase: ``phi``; ``0`` gives an even (bar) cell, ``pi / 2`` an odd (edge) one.
        x0, y0: the centre, in cells from the kernel's centre.
        tau: the orientation of ``x'``, radians from the ``x`` axis towards ``y``.
        dtype: of the result when no parameter is a tensor (else the parameters').

    Any parameter may be a tensor; they broadcast, and the result is differentiable in them
    (this is how :class:`gridconv.nn.GaborConv2d` learns them).

    Shape:
        Output: ``(*batch, rows, columns)``, ``batch`` the parameters' broadcast shape.

    Example:
        >>> import math, torch, gridconv as gc
        >>> w = gc.kernels.gabor(7, beta_x=0.1, beta_y=0.1, frequency=math.pi / 2)
        >>> w.shape, round(w[3, 3].item(), 6)
        (torch.Size([7, 7]), 1.0)
        >>> bank = gc.kernels.gabor(9, beta_x=0.05, beta_y=0.05, frequency=1.0,
        ...                         tau=torch.linspace(0, math.pi, 4, dtype=torch.float64))
        >>> bank.shape
        torch.Size([4, 9, 9])
    """
    rows, cols = ntuple("size", size, 2)
    values = [
        _as_tensor("alpha", alpha),
        _as_tensor("beta_x", beta_x, positive=True),
        _as_tensor("beta_y", beta_y, positive=True),
        _as_tensor("frequency", frequency),
        _as_tensor("phase", phase),
        _as_tensor("x0", x0),
        _as_tensor("y0", y0),
        _as_tensor("tau", tau),
    ]
    tensors = [v for v in values if v.dim() or v.requires_grad]
    out_dtype = tensors[0].dtype if tensors else (dtype or torch.get_default_dtype())
    device = tensors[0].device if tensors else None
    a, bx, by, f, phi, cx, cy, t = (
        v.to(dtype=out_dtype, device=device)[..., None, None] for v in values
    )
    x = offsets(cols, out_dtype).to(device)[None, :]
    y = offsets(rows, out_dtype).to(device)[:, None]
    dx, dy = x - cx, y - cy
    xr = dx * torch.cos(t) + dy * torch.sin(t)
    yr = -dx * torch.sin(t) + dy * torch.cos(t)
    return a * torch.exp(-bx * xr**2 - by * yr**2) * torch.cos(f * xr + phi)


def envelope_beta(frequency: float, bandwidth: float = 1.0) -> float:
    """The ``beta`` of a Gabor of ``bandwidth`` octaves at ``frequency`` (radians per cell).

    A one-octave cell has ``sigma = 0.56 * wavelength`` (Daugman; the V1 median): the
    envelope ``exp(-x^2 / (2 sigma^2))`` has ``beta = 1 / (2 sigma^2)``.
    """
    k = math.sqrt(math.log(2) / 2) * (2**bandwidth + 1) / (2**bandwidth - 1)
    sigma = k / math.pi * (2 * math.pi / frequency)
    return 1 / (2 * sigma**2)


def _angles(name: str, value: object, period: float) -> list[float]:
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be a count or a sequence of angles, got {value!r}.")
    if isinstance(value, int):
        count = check_int(name, value, minimum=1)
        return [period * i / count for i in range(count)]
    if not isinstance(value, Sequence) or not value:
        raise ValueError(f"`{name}` must be a count or a non-empty sequence, got {value!r}.")
    return [float(v) for v in value]


def bank_parameters(
    orientations: int | Sequence[float],
    frequencies: Sequence[float],
    phases: Sequence[float] = (0.0, math.pi / 2),
    bandwidth: float = 1.0,
) -> dict[str, Tensor]:
    """The parameters of :func:`gabor_bank`'s kernels, one float64 tensor ``(K,)`` each.

    Every orientation x frequency x phase (phase fastest), isotropic envelopes
    (``beta_x = beta_y = envelope_beta(f, bandwidth)``), centred, ``alpha = 1``.

    Shape:
        Output: each value ``(K,)``, ``K = orientations * frequencies * phases``.
    """
    taus = _angles("orientations", orientations, math.pi)
    if isinstance(frequencies, int | float):
        frequencies = (frequencies,)
    if not isinstance(frequencies, Sequence) or not frequencies:
        raise ValueError(f"`frequencies` must be a non-empty sequence, got {frequencies!r}.")
    if not all(isinstance(f, int | float) and 0 < f < math.inf for f in frequencies):
        raise ValueError(f"`frequencies` must be positive numbers, got {list(frequencies)}.")
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, int | float) or bandwidth <= 0:
        raise ValueError(f"`bandwidth` must be a number > 0, got {describe(bandwidth)}.")
    phis = _angles("phases", phases, 2 * math.pi)
    grid = torch.tensor(
        [(t, f, p) for t in taus for f in frequencies for p in phis], dtype=torch.float64
    )
    tau, f, phi = grid.unbind(1)
    beta = torch.tensor([envelope_beta(v, bandwidth) for v in f.tolist()], dtype=torch.float64)
    zeros = torch.zeros_like(f)
    return {
        "alpha": torch.ones_like(f),
        "beta_x": beta,
        "beta_y": beta.clone(),
        "frequency": f,
        "phase": phi,
        "x0": zeros,
        "y0": zeros.clone(),
        "tau": tau,
    }


def gabor_bank(
    size: int,
    *,
    orientations: int | Sequence[float],
    frequencies: Sequence[float],
    phases: Sequence[float] = (0.0, math.pi / 2),
    bandwidth: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """A bank of Gabor kernels: every orientation x frequency x phase, conv-ready.

    Each kernel is isotropic (``beta_x = beta_y = envelope_beta(f, bandwidth)``), centred,
    with ``alpha = 1``. With the default phases, kernels ``2i`` and ``2i + 1`` are a
    quadrature pair, as :class:`gridconv.nn.ComplexCell2d` needs.

    Args:
        size: cells per side.
        orientations: a count ``n`` (``tau = pi i / n``) or the angles in radians.
        frequencies: radians per cell (``pi / 2`` is a wavelength of 4 cells).
        phases: a count or radians.
        bandwidth: the envelope's bandwidth in octaves (larger: fewer stripes).

    Shape:
        Output: ``(K, 1, size, size)``, ``K = orientations * frequencies * phases``, ordered
        orientation-major, phase fastest.

    Example:
        >>> import math, gridconv as gc
        >>> gc.kernels.gabor_bank(11, orientations=4, frequencies=(math.pi / 2, math.pi / 4)).shape
        torch.Size([16, 1, 11, 11])
    """
    size = check_int("size", size, minimum=1)
    params: dict[str, Any] = bank_parameters(orientations, frequencies, phases, bandwidth)
    w = gabor(size, **params)
    return w[:, None].to(dtype or torch.get_default_dtype())


def quadrature_pair(size: int | Sequence[int], *, phase: float = 0.0, **params: Any) -> Tensor:
    """Two Gabors that differ only in phase, by ``pi / 2``: a complex cell's inputs.

    ``sqrt(conv(x, even)^2 + conv(x, odd)^2)`` is the complex cell's response, which
    barely changes as a grating drifts under it (sec. 9.10).

    Args:
        size, phase, params: as :func:`gabor` (``beta_x``, ``beta_y``, ``frequency``, ...).

    Shape:
        Output: ``(2, 1, rows, columns)``
    """
    even = gabor(size, phase=phase, **params)
    odd = gabor(size, phase=phase + math.pi / 2, **params)
    return torch.stack([even, odd])[:, None]


class GaborFit(NamedTuple):
    """The best Gabor for each kernel: its parameters (tensors ``(K,)``, keyed as
    :data:`PARAMETERS`), the fitted kernels and ``r2``, the fraction of each kernel's
    variance they explain."""

    params: dict[str, Tensor]
    fitted: Tensor
    r2: Tensor


def _candidates(rows: int, cols: int) -> dict[str, Tensor]:
    """A coarse grid of Gabor shapes to start the fit from (alpha and phase are solved)."""
    n = max(rows, cols)
    wavelengths = torch.tensor([2.0, 2.5, 3.0, 4.0, 5.0, 6.5, 8.0, 11.0]) * n / 8
    sigmas = torch.tensor([0.8, 1.3, 2.0, 3.2]) * n / 8
    shifts = torch.tensor([-n / 5, 0.0, n / 5])
    taus = torch.arange(16) * math.pi / 16
    grid = torch.cartesian_prod(taus, 2 * math.pi / wavelengths, sigmas, shifts, shifts)
    tau, f, sigma, x0, y0 = grid.double().unbind(1)
    beta = 1 / (2 * sigma**2)
    return {"beta_x": beta, "beta_y": beta, "frequency": f, "x0": x0, "y0": y0, "tau": tau}


def _fit_phase(w: Tensor, even: Tensor, odd: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Least-squares ``a * even + b * odd`` of each kernel for each candidate pair.

    Returns ``a``, ``b`` and ``||w||^2 - SSE`` (what the pair explains), each ``(K, M)``,
    for kernels ``w`` ``(K, P)`` and candidates ``even``, ``odd`` ``(M, P)``.
    """
    ee, oo, eo = (even * even).sum(-1), (odd * odd).sum(-1), (even * odd).sum(-1)
    we, wo = w @ even.T, w @ odd.T
    det = (ee * oo - eo**2).clamp_min(1e-12)
    a = (we * oo - wo * eo) / det
    b = (wo * ee - we * eo) / det
    return a, b, a * we + b * wo


def fit_gabor(kernels: Tensor, *, steps: int = 300) -> GaborFit:
    """Fit the chapter's Gabor function to each 2-D kernel by least squares.

    A coarse search over orientation, frequency, width and position (amplitude and phase
    solved in closed form for each) picks a start; Adam then refines all eight parameters
    of every kernel at once. ``r2 = 1 - SSE / sum((w - mean(w))^2)``; Gabor-like kernels
    reach 0.6 or more (the criterion of the kernel experiments), noise stays near 0.

    Args:
        kernels: ``(K, rows, columns)`` or ``(K, 1, rows, columns)``.
        steps: refinement steps.

    Shape:
        - kernels: ``(K, [1,] rows, columns)``
        - Output: ``params`` of ``(K,)`` each, ``fitted`` as ``kernels``, ``r2`` ``(K,)``.

    Example:
        >>> import math, gridconv as gc
        >>> w = gc.kernels.gabor_bank(8, orientations=3, frequencies=(1.2,), phases=(0.4,))
        >>> bool((gc.kernels.fit_gabor(w).r2 > 0.99).all())
        True
    """
    if not isinstance(kernels, Tensor) or not kernels.is_floating_point():
        raise TypeError(f"`kernels` must be a floating-point tensor, got {describe(kernels)}.")
    shape = kernels.shape
    if kernels.ndim == 4 and shape[1] == 1:
        kernels = kernels[:, 0]
    if kernels.ndim != 3 or min(kernels.shape[1:]) < 2:
        raise ValueError(
            f"`kernels` must have shape (K, rows, columns) or (K, 1, rows, columns) with at "
            f"least 2 x 2 cells, got {tuple(shape)}."
        )
    steps = check_int("steps", steps, minimum=0)
    K, rows, cols = kernels.shape
    w = kernels.detach().double().cpu().reshape(K, -1)
    # 1. the best grid point for each kernel
    start: dict[str, Any] = _candidates(rows, cols)
    even = gabor((rows, cols), **start).reshape(-1, rows * cols)
    odd = gabor((rows, cols), phase=math.pi / 2, **start).reshape(-1, rows * cols)
    a, b, explained = _fit_phase(w, even, odd)
    best = explained.argmax(1)
    a, b = a.gather(1, best[:, None])[:, 0], b.gather(1, best[:, None])[:, 0]
    params = {name: value[best].clone() for name, value in start.items()}
    params["alpha"] = torch.hypot(a, b)
    params["phase"] = torch.atan2(-b, a)
    # 2. refine everything; betas through their logarithms, to stay positive
    free = {
        name: (value.clamp_min(1e-6).log() if name.startswith("beta") else value).requires_grad_()
        for name, value in params.items()
    }
    scale = w.square().sum(1).clamp_min(1e-30)
    optimiser = torch.optim.Adam(free.values(), lr=0.02)

    def model() -> Tensor:
        named: dict[str, Any] = {
            k: (v.exp() if k.startswith("beta") else v) for k, v in free.items()
        }
        return gabor((rows, cols), **named).reshape(K, -1)

    for _ in range(steps):
        loss = ((model() - w).square().sum(1) / scale).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        fitted = model()
        sse = (fitted - w).square().sum(1)
        sst = (w - w.mean(1, keepdim=True)).square().sum(1).clamp_min(1e-30)
        result = {k: (v.exp() if k.startswith("beta") else v).detach() for k, v in free.items()}
    fitted = fitted.reshape(shape).to(kernels.dtype)
    return GaborFit({k: result[k] for k in PARAMETERS}, fitted, 1 - sse / sst)
