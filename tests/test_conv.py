"""gridconv.conv against torch.nn.functional.convNd, scipy.signal.correlate and a naive loop."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

import gridconv as gc
from tests.reference import naive_conv

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_MODULE = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
SIZES = {1: (13,), 2: (9, 11), 3: (6, 7, 8)}
KERNELS = {1: (3,), 2: (3, 4), 3: (2, 3, 3)}


def randn(*shape: int, dtype: torch.dtype = torch.float64, grad: bool = False) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, requires_grad=grad)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (3, 1, 2, 2), (2, 0, 1, 4)],
)
def test_matches_torch_forward_and_backward(d, stride, padding, dilation, groups):
    x = randn(2, 4, *SIZES[d], grad=True)
    w = randn(8, 4 // groups, *KERNELS[d], grad=True)
    b = randn(8, grad=True)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    ours = gc.conv(x, w, b, **kwargs)
    ref = TORCH_CONV[d](x, w, b, **kwargs)
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ref)
    ours_grads = torch.autograd.grad(ours, (x, w, b), g)
    ref_grads = torch.autograd.grad(ref, (x, w, b), g)
    for a, r in zip(ours_grads, ref_grads):
        torch.testing.assert_close(a, r)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_matches_torch_same_at_stride_1(d, dilation):
    x = randn(2, 3, *SIZES[d])
    w = randn(5, 3, *KERNELS[d])  # includes even kernel sizes: the extra cell goes at the end
    ours = gc.conv(x, w, padding="same", dilation=dilation)
    ref = TORCH_CONV[d](x, w, padding="same", dilation=dilation)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch_modules(d, mode):
    torch.manual_seed(d)
    module = TORCH_MODULE[d](4, 6, KERNELS[d], stride=2, padding=2, padding_mode=mode)
    module = module.double()
    x = randn(2, 4, *SIZES[d])
    ours = gc.conv(x, module.weight, module.bias, stride=2, padding=2, padding_mode=mode)
    torch.testing.assert_close(ours, module(x))


@pytest.mark.parametrize(
    "shape, kernel", [((17,), (4,)), ((9, 12), (3, 5)), ((6, 7, 5), (3, 2, 3))]
)
@pytest.mark.parametrize("mode", ["valid", "full", "same"])
def test_single_channel_matches_scipy_correlate(shape, kernel, mode):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(shape), rng.standard_normal(kernel)
    ref = scipy.signal.correlate(x, w, mode=mode, method="direct")
    # scipy centres "same" on the full output: before = ceil((k-1)/2), the extra cell goes first;
    # gridconv's "same" puts it last (TensorFlow), so the two agree exactly for odd kernels.
    padding = [(k // 2, (k - 1) // 2) for k in kernel] if mode == "same" else mode
    ours = gc.conv(torch.from_numpy(x)[None], torch.from_numpy(w)[None, None], padding=padding)
    np.testing.assert_allclose(ours[0].numpy(), ref, rtol=1e-12, atol=1e-12)
    if mode == "same" and all(k % 2 for k in kernel):
        ours = gc.conv(torch.from_numpy(x)[None], torch.from_numpy(w)[None, None], padding="same")
        np.testing.assert_allclose(ours[0].numpy(), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["valid", "full", "same"])
def test_flipped_kernel_is_true_convolution(mode):
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((10, 12)), rng.standard_normal((3, 5))
    ref = scipy.signal.convolve(x, w, mode=mode, method="direct")
    flipped = torch.from_numpy(w).flip((0, 1))[None, None]
    ours = gc.conv(torch.from_numpy(x)[None], flipped, padding=mode)
    np.testing.assert_allclose(ours[0].numpy(), ref, rtol=1e-12, atol=1e-12)


NAIVE_CASES = [
    # d, input size, kernel, stride, padding, dilation, groups
    (1, (10,), (3,), (1,), [(0, 3)], (1,), 1),
    (1, (9,), (4,), (2,), "same", (2,), 2),
    (1, (4,), (3,), (1,), [(7, 9)], (1,), 1),  # padding far wider than the input
    (2, (7, 8), (3, 2), (2, 3), "same", (1, 2), 1),
    (2, (6, 6), (2, 3), (1, 2), [(2, 0), (1, 3)], (2, 1), 2),
    (2, (5, 7), (3, 3), (2, 1), "full", (1, 1), 1),
    (3, (4, 5, 6), (2, 3, 2), (2, 1, 3), "same", (1, 1, 2), 1),
    (3, (4, 4, 5), (3, 2, 2), (1, 2, 1), [(1, 2), (0, 0), (3, 1)], (1, 1, 1), 2),
]


@pytest.mark.parametrize("case", NAIVE_CASES)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("bias_kind", ["tied", "untied"])
def test_matches_naive_loop(case, mode, bias_kind):
    d, size, kernel, stride, padding, dilation, groups = case
    x, w = randn(2, 4, *size), randn(6, 4 // groups, *kernel)
    out_no_bias = gc.conv(
        x, w, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode
    )
    bias = randn(6) if bias_kind == "tied" else randn(6, *out_no_bias.shape[2:])
    ours = gc.conv(
        x,
        w,
        bias,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=mode,
    )
    pairs = gc._shapes.resolve_padding(
        gc._shapes.parse_padding(padding, d), size, kernel, stride, dilation
    )
    ref = naive_conv(
        x.numpy(),
        w.numpy(),
        bias.numpy(),
        stride=stride,
        pairs=pairs,
        dilation=dilation,
        groups=groups,
        padding_mode=mode,
    )
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size, stride, dilation", [(10, 3, 1), (7, 2, 3), (1, 4, 1), (16, 5, 2)])
def test_same_output_is_ceil_input_over_stride_with_extra_cell_last(size, stride, dilation):
    x, w = randn(1, 1, size), randn(1, 1, 4)
    out = gc.conv(x, w, padding="same", stride=stride, dilation=dilation)
    assert out.shape[-1] == -(-size // stride)
    total = max((out.shape[-1] - 1) * stride + dilation * 3 + 1 - size, 0)
    pairs = [(total // 2, total - total // 2)]
    ref = naive_conv(x.numpy(), w.numpy(), stride=(stride,), pairs=pairs, dilation=(dilation,))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_unbatched_input_gives_unbatched_output():
    x, w, b = randn(3, 10, 10), randn(4, 3, 3, 3), randn(4)
    out = gc.conv(x, w, b, padding="same", stride=2)
    torch.testing.assert_close(out, gc.conv(x[None], w, b, padding="same", stride=2)[0])
    assert out.shape == (4, 5, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_keeps_dtype_and_device(dtype):
    x, w = torch.randn(2, 3, 8, 8, dtype=dtype), torch.randn(4, 3, 3, 3, dtype=dtype)
    out = gc.conv(x, w, padding="full", padding_mode="reflect")
    assert out.dtype == dtype and out.device == x.device


def test_untied_bias_adds_one_value_per_output_location():
    x, w = randn(2, 3, 6, 6), randn(4, 3, 3, 3)
    bias = randn(4, 6, 6)
    out = gc.conv(x, w, bias, padding="same")
    torch.testing.assert_close(out, gc.conv(x, w, padding="same") + bias)


def test_method_direct_and_auto_agree():
    x, w = randn(2, 3, 12, 12), randn(4, 3, 5, 5)
    torch.testing.assert_close(
        gc.conv(x, w, padding="same", method="direct"), gc.conv(x, w, padding="same")
    )


@pytest.mark.parametrize("mode", ["reflect", "circular"])
def test_padding_beyond_one_period_matches_numpy_pad(mode):
    from tests.reference import NUMPY_MODE

    for size, before, after in [(1, 3, 2), (2, 5, 4), (3, 7, 8), (5, 11, 0)]:
        x = np.arange(size, dtype=np.float64)
        ref = np.pad(x, (before, after), mode=NUMPY_MODE[mode])
        ours = gc.functional.pad(torch.from_numpy(x), ((before, after),), mode)
        np.testing.assert_array_equal(ours.numpy(), ref)


def test_numpy_integers_are_accepted_as_ints():
    x, w = randn(1, 2, 9, 9), randn(3, 2, 3, 3)
    ours = gc.conv(x, w, stride=np.int64(2), padding=[(np.int32(0), 1), np.int64(2)])
    torch.testing.assert_close(ours, gc.conv(x, w, stride=2, padding=[(0, 1), (2, 2)]))
