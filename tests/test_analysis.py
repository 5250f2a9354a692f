"""gridconv.analysis: counts against torch's FlopCounterMode and hand arithmetic, receptive
fields against the gradient footprint of one output unit, translation sensitivity against
its definition and the chapter's claim."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import gridconv as gc
from gridconv.analysis import count_flops, count_parameters, receptive_field
from gridconv.analysis import translation_sensitivity as sensitivity


def measured_flops(module, shape):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(shape))
    return counter.get_total_flops()


def test_count_parameters_counts_shared_parameters_once_and_can_skip_frozen_ones():
    conv = gc.nn.Conv2d(3, 8, 3)
    net = nn.Sequential(conv, nn.ReLU(), conv)
    assert count_parameters(net) == 8 * 3 * 9 + 8
    conv.bias.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == 8 * 3 * 9


FLOP_MODELS = {
    "conv same stride": (lambda: gc.nn.Conv2d(3, 8, 5, stride=2, padding="same"), (2, 3, 17, 15)),
    "depthwise separable": (lambda: gc.nn.DepthwiseSeparableConv2d(16, 32, 3), (1, 16, 12, 12)),
    "spatially separable": (lambda: gc.nn.SpatiallySeparableConv2d(4, 6, 7), (2, 4, 20, 20)),
    "local": (lambda: gc.nn.LocallyConnected1d(3, 5, 4, 30, stride=2), (2, 3, 30)),
    "tiled": (lambda: gc.nn.TiledConv2d(3, 4, 3, (2, 3), padding="same"), (2, 3, 10, 9)),
    "low rank": (
        lambda: gc.nn.Conv2d(3, 4, (5, 3), stride=2, padding="same").to_separable(rank=2),
        (2, 3, 17, 19),
    ),
    "torch stack": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, groups=1),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 8, 3, groups=2, padding=1),
            nn.ConvTranspose2d(8, 2, 3, stride=2),
            nn.Flatten(),
            nn.LazyLinear(10),
        ),
        (3, 1, 14, 14),
    ),
}


@pytest.mark.parametrize("case", FLOP_MODELS)
def test_count_flops_matches_torchs_flop_counter(case):
    make, shape = FLOP_MODELS[case]
    torch.manual_seed(0)
    model = make()
    model(torch.zeros(shape))  # materialise lazy layers
    assert count_flops(model, shape) == measured_flops(model, shape) > 0


def test_count_flops_by_layer_and_the_chapters_example():
    shape = (1, 16, 32, 32)
    full = count_flops(gc.nn.Conv2d(16, 32, 3, padding="same"), shape)
    assert full == 2 * 32 * 32 * 32 * 16 * 9
    separable = gc.nn.DepthwiseSeparableConv2d(16, 32, 3, padding="same")
    layers = count_flops(separable, shape, by_layer=True)
    assert layers == {"depthwise": 2 * 32 * 32 * 16 * 9, "pointwise": 2 * 32 * 32 * 32 * 16}
    assert full / sum(layers.values()) == pytest.approx(4608 / 656)


def footprint(model, shape, index):
    """Bounding box of the input cells that output unit ``index`` depends on."""
    torch.manual_seed(1)
    x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    out = model(x)
    out[(0, 0, *index)].backward()
    nonzero = x.grad[0].abs().sum(0).nonzero()
    return tuple(zip(nonzero.min(0).values.tolist(), nonzero.max(0).values.tolist()))


def positive(model):
    """Positive weights: no cancellation, so the gradient's support is the whole field."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.1, 1.0)
    return model.double()


STACKS = {
    "conv pool conv": (
        lambda: nn.Sequential(
            gc.nn.Conv2d(1, 3, 3), gc.nn.Pool2d(2, method="avg"), gc.nn.Conv2d(3, 2, 3)
        ),
        (1, 1, 30, 30),
    ),
    "same, stride, dilation": (
        lambda: nn.Sequential(
            gc.nn.Conv2d(1, 3, 5, stride=2, padding="same"),
            nn.ReLU(),
            gc.nn.Conv2d(3, 3, 3, dilation=2, padding="full"),
            nn.AvgPool2d(3, stride=2, padding=1),
            gc.nn.Conv2d(3, 2, (3, 1), stride=(1, 2), padding=[(2, 0), (0, 1)]),
        ),
        (1, 1, 41, 37),
    ),
    "torch convs and pools, 1-d": (
        lambda: nn.Sequential(
            nn.Conv1d(1, 2, 4, stride=2, padding=1),
            nn.LPPool1d(2, 3, stride=2),
            nn.Conv1d(2, 2, 3, dilation=3, padding="same"),
            gc.nn.Pool1d(3, 2, "same", "gaussian"),
        ),
        (1, 1, 90),
    ),
    "local, tiled, separable, low rank": (
        lambda: nn.Sequential(
            gc.nn.LocallyConnected2d(1, 2, 3, (24, 24), padding=1),
            gc.nn.TiledConv2d(2, 2, 3, (2, 2), stride=2),
            gc.nn.DepthwiseSeparableConv2d(2, 2, 3, padding="same"),
            gc.nn.Conv2d(2, 2, (3, 5), stride=(2, 1)).to_separable(rank=1),
            gc.nn.Maxout(gc.nn.SpatiallySeparableConv2d(2, 4, 3, padding="same"), 2),
        ),
        (1, 1, 24, 24),
    ),
}


@pytest.mark.parametrize("case", STACKS)
def test_receptive_field_is_the_gradient_footprint_of_one_unit(case):
    make, shape = STACKS[case]
    torch.manual_seed(2)
    model = positive(make())
    field = receptive_field(model, shape)
    with torch.no_grad():
        out_size = tuple(model(torch.zeros(shape, dtype=torch.float64)).shape[2:])
    assert field.output_size == out_size
    units = [tuple(n // 2 for n in out_size), (0,) * len(out_size)]
    for index in units:
        clipped = tuple(
            (max(lo, 0), min(hi, n - 1)) for (lo, hi), n in zip(field.span(index), shape[2:])
        )
        assert footprint(model, shape, index) == clipped, (index, field)


def test_receptive_field_of_max_pooling_bounds_the_argmax_footprint():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3, 2), gc.nn.Conv2d(2, 1, 3))
    field = receptive_field(model, (1, 1, 20, 20))
    assert field == gc.analysis.ReceptiveField((9, 9), (2, 2), (0, 0), (6, 6))
    box = footprint(positive(model), (1, 1, 20, 20), (3, 3))
    for (lo, hi), (first, last) in zip(box, field.span((3, 3))):
        assert first <= lo <= hi <= last


def test_receptive_field_stops_at_the_last_grid():
    model = nn.Sequential(gc.nn.Conv1d(1, 2, 5), gc.nn.PyramidPool((1, 2)), nn.Linear(6, 3))
    assert receptive_field(model, (1, 1, 20)).size == (5,)


class FunctionalPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.b(torch.nn.functional.max_pool2d(self.a(x), 2))


RF_ERRORS = {
    "functional call": (FunctionalPool(), (1, 1, 16, 16), r"outside any module"),
    "unknown layer": (nn.Sequential(nn.Upsample(scale_factor=2)), (1, 1, 8, 8), r"Upsample"),
    "trailing functional": (
        type("Tail", (nn.Sequential,), {"forward": lambda self, x: self[0](x)[..., ::2]})(
            nn.Conv1d(1, 1, 3)
        ),
        (1, 1, 8),
        r"functional call",
    ),
    "input shape": (nn.Identity(), (1, 1), r"`input_shape` must have 1, 2 or 3 spatial"),
}


@pytest.mark.parametrize("case", RF_ERRORS)
def test_receptive_field_refuses_what_it_cannot_follow(case):
    model, shape, pattern = RF_ERRORS[case]
    with pytest.raises(ValueError, match=pattern):
        receptive_field(model, shape)


def test_translation_sensitivity_follows_its_definition():
    torch.manual_seed(3)
    x = torch.randn(3, 2, 6, 10, dtype=torch.float64)
    measured = sensitivity(nn.Identity(), x, 3)
    for s in range(4):
        moved = torch.zeros_like(x)
        moved[..., s:] = x[..., : 10 - s]
        expected = ((moved - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean()
        assert measured[s].item() == pytest.approx(expected.item())
    diagonal = sensitivity(nn.Identity(), x, [-2], dims=(2, 3), fill="circular")
    rolled = torch.roll(x, (-2, -2), (2, 3))
    expected = ((rolled - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)).mean()
    assert diagonal.item() == pytest.approx(expected.item())
    # a global average is blind to circular shifts
    assert sensitivity(gc.nn.GlobalPool(), x, 4, fill="circular").abs().max() < 1e-12


def test_pooling_buys_invariance_to_small_translations_on_digits():
    """Sec. 9.3: max pooling over 4 cells changes its output far less than the features
    it pools when the input moves by a pixel or two."""
    x = gc.data.load("digits").train.tensors[0][:200].float()
    if x.ndim == 3:
        x = x[:, None]
    torch.manual_seed(4)
    features = nn.Sequential(gc.nn.Conv2d(1, 8, 3, padding="same"), nn.ReLU())
    pooled = nn.Sequential(features, gc.nn.Pool2d(4, stride=4, padding="same"))
    bare = sensitivity(features, x, 2, dims=(2, 3))
    invariant = sensitivity(pooled, x, 2, dims=(2, 3))
    assert invariant[0] == bare[0] == 0
    assert (invariant[1:] < 0.7 * bare[1:]).all(), (bare, invariant)


TS_ERRORS = {
    "shift too large": (lambda: sensitivity(nn.Identity(), torch.zeros(1, 1, 5), 5), "smaller"),
    "negative int": (lambda: sensitivity(nn.Identity(), torch.zeros(1, 1, 5), -1), "`shifts`"),
    "empty": (lambda: sensitivity(nn.Identity(), torch.zeros(1, 1, 5), []), "`shifts`"),
    "batch dim": (lambda: sensitivity(nn.Identity(), torch.zeros(1, 1, 5), 1, dims=0), "`dims`"),
    "fill": (lambda: sensitivity(nn.Identity(), torch.zeros(1, 1, 5), 1, fill="x"), "`fill`"),
    "x dims": (lambda: sensitivity(nn.Identity(), torch.zeros(4, 5), 1), "`x` must have"),
}


@pytest.mark.parametrize("case", TS_ERRORS)
def test_translation_sensitivity_errors_name_their_argument(case):
    call, pattern = TS_ERRORS[case]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match=r"`module` must be a torch.nn.Module"):
        count_parameters(lambda x: x)
    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module"):
        receptive_field("net", (1, 1, 4))
    with pytest.raises(ValueError, match="`input_shape` must be the whole input shape"):
        count_flops(nn.Identity(), 5)
