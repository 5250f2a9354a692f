"""gridconv bench: the harness times every candidate side by side and reports ratios."""

from __future__ import annotations

import json
import time

import pytest
import torch

from gridconv.bench import conv as bench
from gridconv.bench import harness
from gridconv.bench import train as bench_train
from gridconv.cli import main


def test_quick_suite_times_every_candidate():
    records = [r for _, _, r in bench.run(("large-kernel", "separable"), quick=True, rounds=2)]
    assert len(records) == 3
    for r in records:
        expected = {"auto", "auto (measured)", "direct", "fft", "torch conv2d", "scipy fftconvolve"}
        assert expected <= set(r.seconds)
        assert all(t > 0 for t in r.seconds.values())
        assert r.ratios()["auto"] == 1.0
        assert r.auto_method in ("direct", "fft", "separable")
        assert r.regret() >= r.seconds["auto"] / max(r.seconds.values())
    separable = records[-1]
    assert "separable" in separable.seconds  # a Gaussian: exactly separable
    summary = bench.summary(records)
    assert summary["regret_max"] >= summary["regret_gmean"] > 0


def test_scipy_peers_compute_the_same_convolution():
    import torch

    case = bench.Case("t", 2, 3, 4, (20, 21), 5)
    x, w = case.tensors(torch.Generator().manual_seed(0))
    ref = bench.conv(x, w, padding="same", method="direct").numpy()
    peers = bench._scipy_candidates(case, x, w)
    assert set(peers) == {"scipy fftconvolve", "scipy oaconvolve"}
    for run in peers.values():
        assert abs(run() - ref).max() < 1e-4


def test_cli_json_and_plot(tmp_path, capsys):
    png = tmp_path / "crossover.png"
    assert (
        main(["bench", "--quick", "--suite", "1d", "--rounds", "1", "--json", "--plot", str(png)])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert {r["suite"] for r in data["records"]} == {"1d", "crossover"}
    assert "regret_max" in data["summary"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_table(capsys):
    assert main(["bench", "--quick", "--suite", "3d", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "auto chose" in out and "torch conv3d" in out and "regret_max" in out


def test_the_timing_core_interleaves_warms_and_times_slow_candidates_once():
    calls = []

    def call(name, seconds):
        def run():
            calls.append(name)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass

        return run

    cleared = []
    timings = harness.time_interleaved(
        {"quick": call("quick", 0.001), "slow": call("slow", 0.03), "far": call("far", 0.012)},
        rounds=3, max_rounds=6, budget=1.0, slow=0.02, near=10, reset=cleared.append,
    )  # fmt: skip
    # 3 rounds for all, 3 more (to max_rounds) for those within 10x the quickest
    assert timings.runs == {"slow": 1, "quick": 6, "far": 3}
    assert calls.count("slow") == 1  # its warm-up call is its time
    # below WARM_BELOW: the warm-up, then an untimed call before each timed one
    assert calls.count("quick") == 1 + 2 * 6 and calls.count("far") == 1 + 2 * 3
    assert cleared == calls  # reset before every call
    assert 0.001 <= timings.seconds["quick"] < timings.seconds["far"] < timings.seconds["slow"]


def test_cli_rejects_an_unknown_suite(capsys):
    assert main(["bench", "--suite", "huge"]) == 2
    assert "unknown --suite 'huge'" in capsys.readouterr().err


def test_local_suite_times_and_measures_memory(capsys):
    from gridconv.bench import local as bench_local

    records = bench_local.run(quick=True, rounds=1, memory=False)
    assert [r["case"] for r in records] == [c.name for c in bench_local.QUICK]
    for r in records:
        channels_last = {f"{c}{harness.CHANNELS_LAST}" for c in ("conv", "local")}
        assert set(r["seconds"]) - channels_last == set(bench_local.CANDIDATES)
        assert all(t > 0 for t in r["seconds"].values())
    case = bench_local.LocalCase(8, 4, 8, (24, 24), 5)
    local = bench_local.measure_memory(case, "local")
    recipe = bench_local.measure_memory(case, "unfold+einsum")
    assert local is not None and recipe is not None
    # the recipe keeps the whole im2col matrix for its backward pass: 8*4*25*400 floats
    assert recipe["extra"] - recipe["weight_grad"] > 1_000_000
    assert local["weight_grad"] == 20 * 20 * 8 * 4 * 25 * 4
    assert main(["bench", "--quick", "--suite", "local", "--rounds", "1"]) == 0
    assert "unfold+einsum" in capsys.readouterr().out


@pytest.mark.parametrize("case", [*bench_train.QUICK, bench_train.TrainCase(2, 2, 3, (9, 10), 4)])
def test_every_train_candidate_computes_the_same_convolution_and_gradients(case):
    x, w, grad, found = bench_train.forwards(case)
    ref = torch.nn.functional.conv2d if x.ndim == 4 else torch.nn.functional.conv1d
    expected = ref(x, w, padding="same", groups=case.groups)
    gx, gw = torch.autograd.grad(expected, (x, w), grad)
    for name, fn in found.items():
        out = fn()
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4, msg=name)
        for ours, want in zip(torch.autograd.grad(out, (x, w), grad), (gx, gw)):
            torch.testing.assert_close(ours, want, rtol=1e-3, atol=1e-3, msg=name)
    if case.long_depthwise:
        assert "rfft recipe (2L)" in found


def test_bench_train_suite_prints_choices_regret_and_memory(capsys):
    assert main(["bench", "--suite", "train", "--quick", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "auto chose" in out and "regret_max" in out and "peak MB direct / fft" in out
