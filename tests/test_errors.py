"""Every public entry point rejects bad arguments with a ValueError or TypeError naming them."""

from __future__ import annotations

import pytest
import torch

import gridconv as gc

X = torch.randn(2, 4, 8, 8)
W = torch.randn(6, 4, 3, 3)


def conv(**kw):
    args = {"x": X, "w": W, **kw}
    return lambda: gc.conv(args.pop("x"), args.pop("w"), **args)


CONV_ERRORS = {
    "x not a tensor": (conv(x=X.numpy()), TypeError, r"`x` must be a torch.Tensor"),
    "integer x": (conv(x=X.long()), TypeError, r"`x` must have a floating-point dtype"),
    "w wrong dims": (conv(w=torch.randn(6, 4)), ValueError, r"`w` must have shape .* 3, 4 or 5"),
    "w 4 spatial dims": (conv(w=torch.randn(1, 1, 2, 2, 2, 2)), ValueError, r"`w` must have"),
    "empty kernel": (conv(w=torch.randn(6, 4, 0, 3)), ValueError, r"`w` must have no empty"),
    "x wrong dims": (conv(x=torch.randn(8, 8)), ValueError, r"`x` must have shape .* 4 or 3 dims"),
    "empty spatial": (conv(x=torch.randn(1, 4, 0, 8)), ValueError, r"empty spatial dim"),
    "channel mismatch": (conv(x=torch.randn(2, 3, 8, 8)), ValueError, r"channel mismatch: `x`"),
    "groups vs input": (conv(groups=3), ValueError, r"`groups` \(=3\) must divide the input"),
    "groups vs output": (
        conv(w=torch.randn(5, 2, 3, 3), groups=2),
        ValueError,
        r"`groups` \(=2\) must divide the output channels",
    ),
    "groups zero": (conv(groups=0), ValueError, r"`groups` must be >= 1, got 0"),
    "groups float": (conv(groups=1.0), TypeError, r"`groups` must be an int"),
    "kernel too large": (
        conv(x=torch.randn(1, 4, 2, 8)),
        ValueError,
        r"kernel is larger than the padded input in spatial dim 0",
    ),
    "kernel too large dilated": (
        conv(dilation=4),
        ValueError,
        r"kernel is larger than the padded input .* dilation=4",
    ),
    "zero stride": (conv(stride=0), ValueError, r"`stride` must be >= 1, got 0"),
    "negative dilation": (conv(dilation=(1, -1)), ValueError, r"`dilation` must be >= 1, got -1"),
    "stride wrong length": (conv(stride=(1, 2, 3)), ValueError, r"`stride` must be an int or 2"),
    "stride bool": (conv(stride=True), TypeError, r"`stride` must be an int"),
    "stride string": (conv(stride="2"), TypeError, r"`stride` must be an int or 2 ints"),
    "unknown padding string": (conv(padding="half"), ValueError, r"`padding` must be one of"),
    "negative padding": (conv(padding=-1), ValueError, r"`padding` must be .* got -1"),
    "bool padding": (conv(padding=True), ValueError, r"`padding` must be .* got True \(bool\)"),
    "padding wrong length": (conv(padding=(1, 2, 3)), ValueError, r"`padding` must be"),
    "padding bad pair": (conv(padding=[(1, 2, 3), 1]), ValueError, r"\(before, after\) pairs"),
    "unknown padding mode": (conv(padding_mode="mirror"), ValueError, r"`padding_mode` must be"),
    "unknown method": (conv(method="winograd"), ValueError, r"`method` must be one of 'auto'"),
    "bias wrong shape": (conv(bias=torch.randn(5)), ValueError, r"`bias` must have shape \(6,\)"),
    "untied bias wrong shape": (
        conv(bias=torch.randn(6, 8, 8)),
        ValueError,
        r"or \(6, 6, 6\) \(untied",
    ),
    "bias not tensor": (conv(bias=[0.0] * 6), TypeError, r"`bias` must be a torch.Tensor"),
    "mixed dtypes": (conv(w=W.double()), TypeError, r"`w` has dtype torch.float64 but `x`"),
    "bias dtype": (conv(bias=torch.zeros(6, dtype=torch.float64)), TypeError, r"`bias` has dtype"),
    "mixed devices": (conv(w=W.to("meta")), ValueError, r"`w` is on device meta but `x` is on cpu"),
}


@pytest.mark.parametrize("name", list(CONV_ERRORS))
def test_conv_errors(name):
    call, error, match = CONV_ERRORS[name]
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    "kw, error, match",
    [
        ({"stride": True}, TypeError, r"`stride` must be an int"),
        ({"groups": True}, TypeError, r"`groups` must be an int, got True"),
        ({"groups": 1.0}, TypeError, r"`groups` must be an int, got 1.0"),
        ({"dilation": 1.0}, TypeError, r"`dilation` must be an int or 2 ints, got 1.0"),
        ({"padding": 1.0}, ValueError, r"`padding` must be .* got 1.0 \(float\)"),
        ({"padding": True}, ValueError, r"`padding` must be .* got True \(bool\)"),
        ({"x": X[:, :3]}, ValueError, r"channel mismatch"),
        ({"bias": torch.zeros(6, dtype=torch.float64)}, TypeError, r"`bias` has dtype"),
    ],
)
def test_conv_errors_after_valid_calls_like_them(kw, error, match):
    """Valid calls are remembered, to skip their checks the next time; a bad call whose
    arguments compare equal to a remembered one (True == 1 == 1.0) is still checked."""
    gc.conv(X, W, torch.zeros(6), stride=1, padding=1, dilation=1, groups=1)
    gc.conv(X, W, stride=1, padding=1, dilation=1, groups=1)
    with pytest.raises(error, match=match):
        conv(**{"padding": 1, **kw})()


Y = torch.randn(2, 6, 6, 6)

OTHER_ERRORS = {
    "transpose: y shape": (
        lambda: gc.conv_transpose(torch.randn(2, 6, 5, 5), W, input_size=(8, 8)),
        ValueError,
        r"`y` must have shape \(N, \*\(6, 6, 6\)\)",
    ),
    "transpose: y channels": (
        lambda: gc.conv_transpose(torch.randn(2, 5, 6, 6), W, input_size=8),
        ValueError,
        r"`y` must have shape",
    ),
    "transpose: no input_size": (
        lambda: gc.conv_transpose(Y, W, input_size=None),
        ValueError,
        r"`input_size` is required",
    ),
    "transpose: input_size channels": (
        lambda: gc.conv_transpose(Y, W, input_size=(2, 3, 8, 8)),
        ValueError,
        r"`input_size` \(2, 3, 8, 8\) has 3 channels but the kernel expects 4",
    ),
    "transpose: input_size length": (
        lambda: gc.conv_transpose(Y, W, input_size=(8, 8, 8, 8, 8)),
        ValueError,
        r"`input_size` must be an int or 2 ints",
    ),
    "transpose: mixed dtypes": (
        lambda: gc.conv_transpose(Y.double(), W, input_size=8),
        TypeError,
        r"`w` has dtype torch.float32 but `y`",
    ),
    "matrix: kernel too large": (
        lambda: gc.conv_matrix(W, (2, 2)),
        ValueError,
        r"kernel is larger than the padded input",
    ),
    "matrix: bad mode": (
        lambda: gc.conv_matrix(W, 8, padding_mode="wrap"),
        ValueError,
        r"`padding_mode` must be one of 'zeros', 'reflect', 'replicate', 'circular'",
    ),
    "layer: untied without input_size": (
        lambda: gc.nn.Conv2d(4, 6, 3, bias="untied"),
        ValueError,
        r"`bias='untied'` needs `input_size`",
    ),
    "layer: bad bias value": (
        lambda: gc.nn.Conv2d(4, 6, 3, bias="shared"),
        ValueError,
        r"`bias` must be True, 'tied', 'untied' or False",
    ),
    "layer: groups": (
        lambda: gc.nn.Conv2d(4, 6, 3, groups=4),
        ValueError,
        r"`out_channels` \(=6\) must be divisible by `groups` \(=4\)",
    ),
    "layer: in_channels": (
        lambda: gc.nn.Conv1d(0, 6, 3),
        ValueError,
        r"`in_channels` must be >= 1, got 0",
    ),
    "layer: kernel_size": (
        lambda: gc.nn.Conv3d(1, 1, (3, 3)),
        ValueError,
        r"`kernel_size` must be an int or 3 ints",
    ),
    "layer: dims": (
        lambda: gc.nn.Conv(4, 1, 1, 3),
        ValueError,
        r"`num_spatial_dims` must be 1, 2 or 3, got 4",
    ),
    "layer: method": (
        lambda: gc.nn.Conv2d(1, 1, 3, method="im2col"),
        ValueError,
        r"`method` must be one of",
    ),
    "layer: untied kernel too large": (
        lambda: gc.nn.Conv2d(1, 1, 5, bias="untied", input_size=3),
        ValueError,
        r"kernel is larger than the padded input",
    ),
    "to_torch: untied": (
        lambda: gc.nn.Conv2d(1, 1, 3, bias="untied", input_size=8).to_torch(),
        ValueError,
        r"cannot express an untied bias",
    ),
    "to_torch: asymmetric": (
        lambda: gc.nn.Conv2d(1, 1, 3, padding=[(0, 1), 1]).to_torch(),
        ValueError,
        r"cannot express asymmetric padding",
    ),
    "to_torch: strided same": (
        lambda: gc.nn.Conv2d(1, 1, 3, stride=2, padding="same").to_torch(),
        ValueError,
        r"cannot express padding='same' with stride \(2, 2\)",
    ),
    "from_torch: not a conv": (
        lambda: gc.nn.Conv2d.from_torch(torch.nn.Linear(2, 2)),
        TypeError,
        r"`module` must be a torch.nn.Conv1d, Conv2d or Conv3d, got Linear",
    ),
    "from_torch: transposed": (
        lambda: gc.nn.Conv2d.from_torch(torch.nn.ConvTranspose2d(2, 2, 3)),
        TypeError,
        r"got ConvTranspose2d",
    ),
    "from_torch: wrong dims": (
        lambda: gc.nn.Conv2d.from_torch(torch.nn.Conv1d(2, 2, 3)),
        TypeError,
        r"must be a torch.nn.Conv2d for Conv2d.from_torch, got Conv1d",
    ),
    "data: unknown": (
        lambda: gc.data.load("imagenet"),
        ValueError,
        r"`spec` must be one of mnist5k, digits, mnist-idx:DIR, cifar10:DIR, folder:DIR; "
        r"got 'imagenet'",
    ),
    "data: not a string": (lambda: gc.data.load(3), TypeError, r"`spec` must be a data set name"),
}


@pytest.mark.parametrize("name", list(OTHER_ERRORS))
def test_other_errors(name):
    call, error, match = OTHER_ERRORS[name]
    with pytest.raises(error, match=match):
        call()


def test_layer_forward_with_the_wrong_input_size_for_an_untied_bias():
    layer = gc.nn.Conv2d(4, 6, 3, padding="same", bias="untied", input_size=(8, 8))
    with pytest.raises(ValueError, match=r"`bias` must have shape \(6,\) .* \(6, 10, 10\)"):
        layer(torch.randn(1, 4, 10, 10))
