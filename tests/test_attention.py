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
