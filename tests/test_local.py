"""local_conv and tiled_conv: against naive loops, against conv, gradients, chunking."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import gridconv as gc
from gridconv._shapes import parse_padding, resolve_padding
from gridconv.functional import local as local_module
from gridconv.functional import tiled as tiled_module
from gridconv.functional._spec import conv_spec
from tests.reference import naive_local, tile_weights
from tests.strategies import configs

CASES = [
    # input size, kernel, stride, padding, dilation, mode
    ((13,), (4,), (2,), "same", (2,), "reflect"),
    ((9, 11), (3, 2), (1, 2), [(1, 0), (2, 1)], (2, 1), "zeros"),
    ((8, 7), (3, 3), (2, 2), "full", (1, 1), "circular"),
    ((5, 6, 7), (2, 3, 2), (2, 1, 2), 1, (1, 1, 1), "replicate"),
]


def out_size(case):
    size, kernel, stride, padding, dilation, _ = case
    pairs = resolve_padding(parse_padding(padding, len(size)), size, kernel, stride, dilation)
    sizes = tuple(
        (n + b + a - dl * (k - 1) - 1) // s + 1
        for n, (b, a), k, s, dl in zip(size, pairs, kernel, stride, dilation)
    )
    return pairs, sizes


def kwargs(case):
    _, _, stride, padding, dilation, mode = case
    return {"stride": stride, "padding": padding, "dilation": dilation, "padding_mode": mode}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("bias_kind", ["untied", "tied", None])
def test_local_conv_matches_a_naive_loop(case, bias_kind):
    size, kernel, stride, _, dilation, mode = case
    pairs, out = out_size(case)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, *size, generator=g, dtype=torch.float64)
    w = torch.randn(*out, 4, 3, *kernel, generator=g, dtype=torch.float64)
    bias = {
        "untied": torch.randn(4, *out, dtype=torch.float64),
        "tied": torch.randn(4, dtype=torch.float64),
    }
    b = bias.get(bias_kind)
    ours = gc.local_conv(x, w, b, **kwargs(case))
    ref = naive_local(
        x.numpy(),
        w.numpy(),
        None if b is None else b.numpy(),
        stride=stride,
        pairs=pairs,
        dilation=dilation,
        padding_mode=mode,
    )
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("tile", [2, 3])
def test_tiled_conv_matches_a_naive_loop(case, tile):
    size, kernel, stride, _, dilation, mode = case
    pairs, out = out_size(case)
    d = len(size)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, *size, generator=g, dtype=torch.float64)
    w = torch.randn(*([tile] * d), 4, 3, *kernel, generator=g, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    ours = gc.tiled_conv(x, w, b, **kwargs(case))
    full = tile_weights(w.numpy(), out)  # tiles need not divide the output
    ref = naive_local(
        x.numpy(), full, b.numpy(), stride=stride, pairs=pairs, dilation=dilation, padding_mode=mode
    )
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-10)


def untiled(w, out):
    """``tile_weights`` in torch, differentiable: the per-location kernels of a tiled weight."""
    d = len(out)
    for i, (o, t) in enumerate(zip(out, w.shape[:d])):
        w = w.index_select(i, torch.arange(o) % t)
    return w


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("tile", [2, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("path", ["phases", "polyphase", "space_to_depth"])
def test_tiled_conv_gradients_match_unshared_ones(case, tile, layout, path, monkeypatch):
    """Each kernel's convolution reads a shifted view of one padded copy where its output
    count allows (else a slice): both kinds, with a batch whose images lie end to end. The
    input gradient comes from each kernel's backward pass, or from one convolution on the
    input's polyphase grid; or the whole op is one convolution of the input's polyphase
    components (few input channels, each taken here wherever it applies)."""
    monkeypatch.setattr(tiled_module, "POLYPHASE_MAX_CHANNELS", 8 if path == "polyphase" else 0)
    monkeypatch.setattr(tiled_module, "POLYPHASE_MIN_PHASES", 1)
    monkeypatch.setattr(
        tiled_module, "SPACE_TO_DEPTH_MAX_TAPS", math.inf if path == "space_to_depth" else 0
    )
    calls = []
    for name in ("_polyphase_grad", "_space_to_depth_conv"):
        fn = getattr(tiled_module, name)
        monkeypatch.setattr(
            tiled_module, name, lambda *a, fn=fn, name=name: calls.append(name) or fn(*a)
        )
    size, kernel = case[0], case[1]
    _, out = out_size(case)
    d = len(size)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, *size, generator=g, dtype=torch.float64)
    if layout == "channels_last" and d == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(*([tile] * d), 3, 2, *kernel, generator=g, dtype=torch.float64)
    w.requires_grad_()
    ours = gc.tiled_conv(x, w, **kwargs(case))
    ref = gc.local_conv(x, untiled(w, out), **kwargs(case))
    torch.testing.assert_close(ours, ref)
    grad = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for a, b in zip(
        torch.autograd.grad(ours, (x, w), grad), torch.autograd.grad(ref, (x, w), grad)
    ):
        torch.testing.assert_close(a, b)
    expected = {"phases": [], "polyphase": ["_polyphase_grad"]}
    assert calls == expected.get(path, ["_space_to_depth_conv"])


def test_tiled_phases_read_shifted_views_and_slices():
    """The cases above cover both ways a kernel's convolution reads its input."""
    kinds = set()
    for size, kernel, stride, padding, dilation, mode in CASES:
        w = (3, 2, *kernel)
        spec = conv_spec(
            w,
            2,
            size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=1,
            padding_mode=mode,
        )
        for tile in (2, 3):
            kinds |= {shifts for *_, shifts in tiled_module._phases(spec, (tile,) * len(size))}
    assert kinds == {True, False}


def test_tiled_conv_reads_nothing_of_the_next_image():
    """A shifted view runs past its image into the next one; no output reads that part."""
    x = torch.randn(2, 3, 10, 11, dtype=torch.float64)
    x[1] = float("nan")
    x.requires_grad_()
    w = torch.randn(2, 2, 4, 3, 3, 2, dtype=torch.float64)
    for padding in ("valid", "same"):
        out = gc.tiled_conv(x, w, padding=padding)
        alone = x[:1].detach().requires_grad_()
        ref = gc.tiled_conv(alone, w, padding=padding)
        torch.testing.assert_close(out[:1], ref)
        grad = torch.zeros_like(out)
        grad[0] = torch.randn_like(out[0])
        (gx,) = torch.autograd.grad(out, (x,), grad)
        (g_alone,) = torch.autograd.grad(ref, (alone,), grad[:1])
        torch.testing.assert_close(gx[:1], g_alone)


def shared(c, w, d):
    """The per-location weight of a conv: ``w`` repeated at every output location."""
    out = gc.conv(c.x(), w, **c.kwargs).shape[2:]
    return w.expand(*out, *w.shape).clone(), out


@settings(max_examples=30, deadline=None)
@given(configs())
def test_equivalences_forward_and_gradients(c):
    c.groups = 1
    c.in_channels = max(c.in_channels, 1)
    x, w = c.x().requires_grad_(), c.w().requires_grad_()
    d = len(c.input_size)
    ref = gc.conv(x, w, method="direct", **c.kwargs)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, w), grad)
    kw = {k: v for k, v in c.kwargs.items() if k != "groups"}

    full, out = shared(c, w.detach(), d)
    full.requires_grad_()
    local = gc.local_conv(x, full, **kw)  # every location's kernel is w: a convolution
    torch.testing.assert_close(local, ref)
    gx, gfull = torch.autograd.grad(local, (x, full), grad)
    torch.testing.assert_close(gx, ref_grads[0])
    torch.testing.assert_close(gfull.sum(tuple(range(d))), ref_grads[1])

    one = w.detach().reshape(*([1] * d), *w.shape).requires_grad_()  # tile 1: a convolution
    tiled = gc.tiled_conv(x, one, **kw)
    torch.testing.assert_close(tiled, ref)
    gx, gone = torch.autograd.grad(tiled, (x, one), grad)
    torch.testing.assert_close(gx, ref_grads[0])
    torch.testing.assert_close(gone.reshape(w.shape), ref_grads[1])

    anywhere = torch.randn(*out, *w.shape, dtype=torch.float64, requires_grad=True)
    whole = gc.tiled_conv(x, anywhere, **kw)  # a tile the size of the output: unshared
    torch.testing.assert_close(whole, gc.local_conv(x, anywhere, **kw))
    torch.testing.assert_close(
        torch.autograd.grad(whole, (x, anywhere), grad),
        torch.autograd.grad(gc.local_conv(x, anywhere, **kw), (x, anywhere), grad),
    )


@pytest.mark.parametrize("case", CASES)
def test_gradcheck(case):
    size, kernel = case[0], case[1]
    _, out = out_size(case)
    d = len(size)
    x = torch.randn(1, 2, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(*out, 2, 2, *kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, *out, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: gc.local_conv(x, w, b, **kwargs(case)), (x, w, b)
    )
    t = torch.randn(*([2] * d), 2, 2, *kernel, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: gc.tiled_conv(x, t, **kwargs(case)), (x, t))


def test_tiled_double_backward_and_layout():
    """tiled_conv's backward is made of differentiable ops (its gradients have gradients),
    and the channels-last layout it uses inside never shows in its results."""
    x = torch.randn(2, 2, 7, 8, dtype=torch.float64, requires_grad=True)
    t = torch.randn(2, 3, 2, 2, 3, 2, dtype=torch.float64, requires_grad=True)

    def tiled(x, t):
        return gc.tiled_conv(x, t, stride=(1, 2), padding="same", padding_mode="reflect")

    assert torch.autograd.gradgradcheck(tiled, (x, t))
    x1 = torch.randn(2, 2, 9, dtype=torch.float64, requires_grad=True)  # run as 2-D inside
    t1 = torch.randn(3, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda x, t: gc.tiled_conv(x, t, stride=2, padding="full"), (x1, t1)
    )
    x2 = torch.randn(2, 1, 9, 8, dtype=torch.float64, requires_grad=True)  # space to depth
    t2 = torch.randn(2, 2, 2, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    assert tiled_module._space_to_depth_pays(
        conv_spec(
            (2, 1, 5, 5),
            1,
            (9, 8),
            stride=1,
            padding="same",
            dilation=1,
            groups=1,
            padding_mode="zeros",
        ),
        (2, 2),
    )
    assert torch.autograd.gradgradcheck(lambda x, t: gc.tiled_conv(x, t, padding="same"), (x2, t2))
    x2 = torch.randn(2, 3, 9, 8, dtype=torch.float64)  # and its layouts
    t2 = torch.randn(2, 2, 2, 3, 5, 5, dtype=torch.float64)
    ref = gc.tiled_conv(x2.requires_grad_(), t2, padding="same")
    (g_ref,) = torch.autograd.grad(ref.sum(), (x2,))
    x2_cl = x2.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    out_cl = gc.tiled_conv(x2_cl, t2, padding="same")
    (g_cl,) = torch.autograd.grad(out_cl.sum(), (x2_cl,))
    assert ref.is_contiguous() and g_ref.is_contiguous()
    assert out_cl.is_contiguous(memory_format=torch.channels_last) and not out_cl.is_contiguous()
    assert g_cl.is_contiguous(memory_format=torch.channels_last) and not g_cl.is_contiguous()
    torch.testing.assert_close(out_cl, ref)
    torch.testing.assert_close(g_cl, g_ref)
    x3 = torch.randn(1, 2, 5, 4, 6, dtype=torch.float64, requires_grad=True)
    t3 = torch.randn(2, 1, 2, 2, 2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, t: gc.tiled_conv(x, t, dilation=2), (x3, t3))
    out = tiled(x, t)
    grads = torch.autograd.grad(out.sum(), (x, t))
    assert out.is_contiguous() and all(g.is_contiguous() for g in grads)
    # a channels-last input gets a channels-last output and gradient, as torch's convs do
    cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    out_cl = tiled(cl, t)
    assert out_cl.is_contiguous(memory_format=torch.channels_last) and not out_cl.is_contiguous()
    torch.testing.assert_close(out_cl, out)
    (grad_cl,) = torch.autograd.grad(out_cl.sum(), (cl,))
    assert grad_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(grad_cl, grads[0])


def test_slabs_of_any_size_give_the_same_result(monkeypatch):
    x = torch.randn(3, 4, 20, 18, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, 9, 5, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    kw = {"stride": 2, "padding": 1}
    out = gc.local_conv(x, w, **kw)
    grads = torch.autograd.grad(out.square().sum(), (x, w))
    monkeypatch.setattr(local_module, "CHUNK_BYTES", 1)  # one output row per slab
    assert (
        len(
            local_module._slabs(
                conv_spec(
                    (5, 4, 3, 3),
                    4,
                    (20, 18),
                    stride=2,
                    padding=1,
                    dilation=1,
                    groups=1,
                    padding_mode="zeros",
                ),
                3,
                8,
            )
        )
        == 10
    )
    torch.testing.assert_close(gc.local_conv(x, w, **kw), out)
    for a, b in zip(torch.autograd.grad(gc.local_conv(x, w, **kw).square().sum(), (x, w)), grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("channels", [2, 6])  # the polyphase input gradient, and not
def test_tiled_conv_only_the_needed_gradients(channels):
    x = torch.randn(2, channels, 9, 8, dtype=torch.float64)
    w = torch.randn(2, 2, 3, channels, 3, 2, dtype=torch.float64)
    kw = {"padding": "same"}
    ref_x, ref_w = torch.autograd.grad(
        gc.tiled_conv(x.requires_grad_(), w.requires_grad_(), **kw).sum(), (x, w)
    )
    (gx,) = torch.autograd.grad(gc.tiled_conv(x, w.detach(), **kw).sum(), (x,))
    (gw,) = torch.autograd.grad(gc.tiled_conv(x.detach(), w, **kw).sum(), (w,))
    torch.testing.assert_close(gx, ref_x)
    torch.testing.assert_close(gw, ref_w)


def test_only_the_needed_gradients():
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(6, 6, 2, 3, 3, 3, requires_grad=True)
    (gw,) = torch.autograd.grad(gc.local_conv(x, w).sum(), (w,))
    assert gw.shape == w.shape
    x.requires_grad_()
    (gx,) = torch.autograd.grad(gc.local_conv(x, w.detach()).sum(), (x,))
    assert gx.shape == x.shape


def test_unbatched_float32_and_errors():
    x, w = torch.randn(3, 10, 10), torch.randn(8, 8, 2, 3, 3, 3)
    out = gc.local_conv(x, w)
    torch.testing.assert_close(out, gc.local_conv(x[None], w)[0])
    assert out.dtype == torch.float32
    with pytest.raises(
        ValueError,
        match=r"`w` must have shape .* = \(8, 8, 2, 3, 3, 3\) for an input of size \(10, 10\)",
    ):
        gc.local_conv(x, torch.randn(7, 8, 2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"`w` must have shape .* 4, 6 or 8 dims"):
        gc.local_conv(x, torch.randn(2, 3, 3, 3, 3))
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input"):
        gc.local_conv(torch.randn(1, 3, 2, 2), torch.randn(1, 1, 2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"kernel is larger than the padded input"):
        gc.tiled_conv(torch.randn(1, 3, 2, 2), torch.randn(2, 2, 2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"channel mismatch"):
        gc.tiled_conv(torch.randn(1, 4, 9, 9), torch.randn(2, 2, 2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"`bias` must have shape \(2,\)"):
        gc.tiled_conv(x, torch.randn(2, 2, 2, 3, 3, 3), torch.randn(3))
