"""The recurrent attention model (Mnih et al. 2014): its contract (shapes, locations in
[-1, 1], gradients reaching every parameter, determinism in eval mode) and a short training
run on translated canvases that beats chance by a wide margin."""

from __future__ import annotations

import pytest
import torch

import gridconv as gc


def test_the_output_contract():
    torch.manual_seed(0)
    ram = gc.nn.RecurrentAttention(1, 10, glimpse_size=6, scales=2, glimpses=5, hidden_size=32)
    out = ram(torch.rand(4, 1, 40, 40))
    assert out.logits.shape == (4, 10)
    assert out.locations.shape == (4, 5, 2)
    assert out.log_probs.shape == out.baselines.shape == (4, 5)
    assert out.locations.abs().max() <= 1
    assert (out.log_probs[:, 0] == 0).all() and (out.log_probs[:, 1:] != 0).all()


def test_the_hybrid_loss_reaches_every_parameter():
    torch.manual_seed(1)
    ram = gc.nn.RecurrentAttention(1, 3, glimpse_size=4, scales=2, glimpses=3, hidden_size=16)
    x, y = torch.rand(8, 1, 24, 24), torch.randint(0, 3, (8,))
    ram.loss(ram(x), y).backward()
    for name, p in ram.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_the_policy_learns_only_from_reinforce():
    """The location is detached: the classifier's loss alone gives the policy no gradient."""
    torch.manual_seed(2)
    ram = gc.nn.RecurrentAttention(1, 3, glimpse_size=4, scales=2, glimpses=3, hidden_size=16)
    out = ram(torch.rand(8, 1, 24, 24))
    torch.nn.functional.cross_entropy(out.logits, torch.randint(0, 3, (8,))).backward()
    assert ram.locator.weight.grad is None and ram.baseline.weight.grad is None


def test_eval_mode_is_deterministic_and_training_samples():
    torch.manual_seed(3)
    ram = gc.nn.RecurrentAttention(1, 10, glimpses=4, hidden_size=32)
    x = torch.rand(3, 1, 60, 60)
    ram.eval()
    a, b = ram(x), ram(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.locations, b.locations)
    ram.train()
    assert not torch.equal(ram(x).locations, ram(x).locations)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(glimpses=0), "glimpses"),
        (dict(std=0.0), "std"),
        (dict(spatial_dims=4), "spatial_dims"),
        (dict(glimpse_size=0), "size"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gc.nn.RecurrentAttention(1, 10, **kwargs)


@pytest.mark.parametrize("d, size", [(1, 40), (3, 12)])
def test_ram_runs_on_1d_and_3d_inputs(d, size):
    """The same model on signals and volumes: locations of d coordinates, every parameter
    trained by the hybrid loss."""
    torch.manual_seed(5)
    ram = gc.nn.RecurrentAttention(
        2, 4, glimpse_size=4, scales=2, glimpses=3, hidden_size=16, spatial_dims=d
    )
    x, y = torch.rand(6, 2, *(size,) * d), torch.randint(0, 4, (6,))
    out = ram(x)
    assert out.locations.shape == (6, 3, d) and out.logits.shape == (6, 4)
    ram.loss(out, y).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ram.parameters())
    with pytest.raises(ValueError, match="`x` must have shape"):
        ram(torch.rand(6, 2, *(size,) * (d % 3 + 1)))


def test_the_core_starts_as_the_identity():
    ram = gc.nn.RecurrentAttention(1, 10, hidden_size=32)
    assert torch.equal(ram.core_h.weight, torch.eye(32)) and not ram.core_h.bias.any()


def test_random_glimpses_are_uniform_and_train_no_policy():
    """policy="random": locations uniform over the input in training and in eval mode (so
    no two calls agree), log-probabilities 0, and the loss gives the locator nothing."""
    torch.manual_seed(6)
    ram = gc.nn.RecurrentAttention(1, 3, glimpse_size=4, scales=2, glimpses=50, policy="random")
    x, y = torch.rand(40, 1, 24, 24), torch.randint(0, 3, (40,))
    ram.eval()
    a, b = ram(x), ram(x)
    assert not torch.equal(a.locations, b.locations)
    spread = a.locations.flatten(0, 1)
    assert spread.abs().max() <= 1 and (spread.min(0).values < -0.9).all()
    assert (spread.max(0).values > 0.9).all() and spread.mean(0).abs().max() < 0.1
    assert not a.log_probs.any()
    ram.train()
    ram.loss(ram(x), y).backward()
    assert ram.locator.weight.grad is None and ram.classifier.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="`policy` must be one of 'learned', 'random'"):
        gc.nn.RecurrentAttention(1, 3, policy="greedy")


def test_a_short_training_run_on_translated_canvases_beats_chance():
    torch.manual_seed(4)
    split = gc.data.load("mnist5k")
    images, labels = split.train.tensors
    g = torch.Generator().manual_seed(0)
    x, y, _ = gc.data.cluttered(images[:2000], labels[:2000], canvas=40, pieces=0, generator=g)
    test_x, test_y, _ = gc.data.cluttered(
        *[t[:500] for t in split.test.tensors], canvas=40, pieces=0, generator=g
    )
    ram = gc.nn.RecurrentAttention(1, 10, glimpse_size=8, scales=3, glimpses=4, hidden_size=128)
    opt = torch.optim.Adam(ram.parameters(), lr=3e-3)
    for _ in range(25):  # about 6 s here; 0.47 test accuracy
        for i in range(0, len(x), 64):
            opt.zero_grad()
            ram.loss(ram(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    ram.eval()
    with torch.no_grad():
        accuracy = (ram(test_x).logits.argmax(1) == test_y).float().mean().item()
    assert accuracy > 0.3, accuracy  # chance is 0.1


def test_gridconv_train_runs_ram_with_its_loss_and_resumes(tmp_path, monkeypatch):
    import json

    from gridconv.cli import main

    calls = []
    real = gc.nn.RecurrentAttention.loss
    monkeypatch.setattr(
        gc.nn.RecurrentAttention, "loss", staticmethod(lambda o, t: calls.append(1) or real(o, t))
    )
    out = tmp_path / "ram"
    base = ["train", "--model", "ram", "--data", "translated:mnist5k", "--batch-size", "500"]
    assert main([*base, "--epochs", "1", "--out", str(out)]) == 0
    assert len(calls) == 8  # 4,000 canvases in batches of 500: the hybrid loss every batch
    assert main([*base, "--epochs", "2", "--out", str(out), "--resume"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert len(calls) == 16 and result["epochs"] == 2
