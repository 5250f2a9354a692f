"""The README's code runs as written: the tour and the backward-pass example."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples may write files (a wisdom file)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    # The backward-pass block compares x.grad with conv_transpose of the output gradient.
    x, g, w = namespace["x"], namespace["g"], namespace["w"]
    gx = namespace["gc"].conv_transpose(g, w, input_size=x.shape, stride=2, padding="same")
    torch.testing.assert_close(x.grad, gx)
    assert namespace["M"].shape == (16 * 29 * 29, 3 * 32 * 32)
    assert type(namespace["fast"][1]) is namespace["gc"].nn.Conv2d
    assert [r.kernel for r in namespace["rows"]] == [(3, 3), (31, 31)]
    theirs = namespace["theirs"]
    assert all(v.converted for v in namespace["plan"])
    assert type(theirs[2]) is namespace["gc"].nn.Conv2d
    assert namespace["optimizer"].param_groups[0]["params"][0] is theirs[0].weight
    assert namespace["k"].rank == 1 and namespace["low"].rank == 2
    assert (tmp_path / "wisdom.json").exists()
    assert namespace["z"].shape == (8, 16, 24, 24)
    assert namespace["lc"](namespace["batch"]).shape == (8, 16, 24, 24)
    assert namespace["v"].shape == (8, 12 * 21) and namespace["m"].shape == (8, 4, 27, 27)
    field = namespace["field"]
    assert field.size == (14, 14) and field.jump == (4, 4)
    assert namespace["shift"][0] == 0 and namespace["flops"] > 0
    assert namespace["learned"].kernels.shape == (64, 1, 8, 8)
    assert namespace["fit"].r2.shape == (64,) and (tmp_path / "kernels.png").exists()
