"""`gridconv demo`: the experiments, the report, and its promises (every figure resolves to a
PNG, verdicts come from the measurements, results.json round-trips, failures are reported)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from gridconv import experiments, report
from gridconv.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_quick_report_has_every_experiment_with_records_and_figures(quick_report):
    results, meta = report.load(quick_report / "results.json")
    assert [r.name for r in results] == list(experiments.NAMES) and meta["mode"] == "quick"
    for r in results:
        assert r.error is None and r.records and r.figures and r.measured, r.name
        assert isinstance(r.supported, bool)
        for figure in r.figures:
            assert (quick_report / figure["file"]).read_bytes()[:8] == PNG


def test_every_image_link_resolves_to_a_valid_png(quick_report):
    from PIL import Image

    page = (quick_report / "index.html").read_text()
    links = re.findall(r'<img src="([^"]+)"', page)
    assert len(links) >= len(experiments.NAMES)
    for link in links:
        assert "/" not in link and not link.startswith("http")  # beside the page, offline
        with Image.open(quick_report / link) as image:
            image.verify()
    first_screen = page.split("<section")[0]
    assert first_screen.count('class="verdict') == len(experiments.NAMES)
    for module in experiments.MODULES.values():
        assert module.CLAIM.replace("'", "&#x27;") in first_screen


def test_verdicts_are_computed_from_the_measurements(quick_report):
    results, _ = report.load(quick_report / "results.json")
    for r in results:
        supported, measured = experiments.MODULES[r.name].verdict(r.records)
        assert (supported, measured) == (r.supported, r.measured), r.name


def flip(name: str, records: list[dict]) -> list[dict]:
    """Records changed so that the verdict must come out the other way."""
    records = copy.deepcopy(records)
    if name == "invariance":
        curves = [r for r in records if r["measure"] == "sensitivity"]
        curves[0]["change"], curves[2]["change"] = curves[2]["change"], curves[0]["change"]
    if name == "sparse_matrix":
        records[0]["max_error"] = 1.0
    if name == "algorithms":
        records[-1]["fft_ms"] = records[-1]["separable_ms"] = records[-1]["direct_ms"] * 10
    if name == "any_size":
        records[-1]["test_accuracy"] = 0.05
    return records


# Measurements each verdict supports (a run's records, in the shape ``run`` makes them):
# flipping one of them must flip the verdict, whatever a quick run happened to measure.
SUPPORTED = {
    "invariance": [
        {"measure": "sensitivity", "pooling": 1, "change": [0.0, 0.5, 0.7]},
        {"measure": "sensitivity", "pooling": 2, "change": [0.0, 0.4, 0.6]},
        {"measure": "sensitivity", "pooling": 4, "change": [0.0, 0.3, 0.4]},
        {"measure": "position", "pooling": 1, "train_rmse": 1.0},
        {"measure": "position", "pooling": 8, "train_rmse": 1.6},
    ],
    "sparse_matrix": [
        {
            "input": "1x6x6",
            "kernel": "1x1x3x3",
            "rows": 16,
            "columns": 36,
            "nonzeros": 144,
            "density": 0.25,
            "max_error": 1e-15,
            "rows_are_the_kernel": True,
        },
        {
            "input": "3x28x28",
            "kernel": "16x3x5x5",
            "kernel_weights": 1200,
            "dense_entries": 21_676_032,
            "conv_multiply_adds": 691_200,
            "dense_multiply_adds": 21_676_032,
        },
    ],
    "algorithms": [
        {"kernel": 3, "direct_ms": 0.24, "fft_ms": 0.66, "separable_ms": 0.5, "auto_ms": 0.25},
        {"kernel": 63, "direct_ms": 570.0, "fft_ms": 0.54, "separable_ms": 0.76, "auto_ms": 0.55},
    ],
    "any_size": [
        {"canvas": c, "test_accuracy": a, "test_accuracy_random_place": r}
        for c, a, r in ((28, 0.978, 0.978), (36, 0.963, 0.822), (44, 0.856, 0.51))
    ],
}


@pytest.mark.parametrize("name", ["invariance", "sparse_matrix", "algorithms", "any_size"])
def test_changed_measurements_change_the_verdict(name):
    verdict = experiments.MODULES[name].verdict
    assert verdict(SUPPORTED[name])[0] is True
    assert verdict(flip(name, SUPPORTED[name]))[0] is False


def test_results_json_round_trips(quick_report, tmp_path):
    results, meta = report.load(quick_report / "results.json")
    report.write(results, tmp_path, meta)
    first = json.loads((quick_report / "results.json").read_text())
    assert json.loads((tmp_path / "results.json").read_text()) == first


def test_a_failing_experiment_is_reported_and_the_others_run(tmp_path, monkeypatch, capsys):
    def broken(settings):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(experiments.MODULES["sparse_matrix"], "run", broken)
    code = main(["demo", "--quick", "--only", "sparse_matrix,algorithms", "--out", str(tmp_path)])
    assert code == 1
    results, _ = report.load(tmp_path / "results.json")
    assert [r.name for r in results] == ["algorithms", "sparse_matrix"]
    assert results[0].error is None and results[0].records
    assert results[1].error == "RuntimeError: the GPU caught fire"
    page = (tmp_path / "index.html").read_text()
    assert "failed" in page and "the GPU caught fire" in page
    assert "1 failed" in capsys.readouterr().out


def test_same_seed_same_results(tmp_path):
    runs = []
    for i in range(2):
        out = tmp_path / str(i)
        assert (
            main(["demo", "--quick", "--only", "permutation,sparse_matrix", "--out", str(out)]) == 0
        )
        results, _ = report.load(out / "results.json")
        runs.append(
            [
                {k: v for k, v in rec.items() if "seconds" not in k}
                for r in results
                for rec in r.records
            ]
        )
    assert runs[0] == runs[1]


def test_unknown_experiment_exits_2(tmp_path, capsys):
    assert main(["demo", "--only", "nonsense", "--out", str(tmp_path)]) == 2
    assert "`only` must name experiments among permutation" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo(tmp_path):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    results, meta = report.load(tmp_path / "results.json")
    assert meta["seconds"] < 600 and all(r.error is None for r in results)


def _foveation_records(ram: float, random: float, conv: float, ram_flops: int = 3_000_000):
    common = {"epochs": 1, "train_seconds": 1.0, "values_read": 1, "pixels_reached": 1.0}
    return [
        {**common, "model": "RAM", "test_accuracy": ram, "flops": ram_flops},
        {**common, "model": "RAM, random glimpses", "test_accuracy": random, "flops": ram_flops},
        {**common, "model": "ConvNet", "test_accuracy": conv, "flops": 34_000_000},
    ]


@pytest.mark.parametrize(
    "accuracies, flops, supported",
    [
        ((0.90, 0.80, 0.94), 3_000_000, True),  # error 10 % <= 2 x 6 %, 10 points over random
        ((0.75, 0.60, 0.93), 3_000_000, False),  # error 3.6x the ConvNet's
        ((0.90, 0.87, 0.94), 3_000_000, False),  # random glimpses within 5 points
        ((0.90, 0.80, 0.94), 9_000_000, False),  # over a quarter of the ConvNet's FLOPs
    ],
)
def test_the_foveation_verdict_rule(accuracies, flops, supported):
    from gridconv.experiments import foveation

    verdict, measured = foveation.verdict(_foveation_records(*accuracies, ram_flops=flops))
    assert verdict is supported and "RAM's error is" in measured
