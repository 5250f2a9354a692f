"""Checkpoints that survive interruption: atomic writes and safe loads.

A checkpoint is written atomically (:mod:`gridconv._atomic`): a crash at any moment leaves
either the old checkpoint or the new one, never half of one. Loading uses ``torch.load(...,
weights_only=True)``, which builds only tensors and plain containers and never runs code.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gridconv._atomic import write_atomic

FORMAT = "gridconv-checkpoint-1"


def save(state: dict[str, Any], path: Path) -> None:
    """Write a checkpoint atomically; ``state`` holds tensors and plain Python values."""
    write_atomic(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a foreign or corrupt file is a ValueError
    that names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for corrupt or unsafe files
        raise ValueError(f"{path} is not a readable gridconv checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a gridconv checkpoint (no {FORMAT!r} marker).")
    return state


def rng_state() -> dict[str, Any]:
    """Every global random number generator: torch's CPU and CUDA ones, NumPy's and Python's
    (a user's model or transform may draw from those), as tensors and plain values."""
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    version, words, python_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            position,
            has_gauss,
            gauss,
        ],
        "python": [version, torch.tensor(words, dtype=torch.int64), python_gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, words, python_gauss = state["python"]
    random.setstate((version, tuple(words.tolist()), python_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
