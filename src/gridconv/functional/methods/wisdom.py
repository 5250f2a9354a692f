"""Wisdom files: the planner's measured choices kept in a JSON file between runs, as FFTW
keeps its plans. Read on entering ``planning(..., wisdom=PATH)``, merged and written back
atomically on leaving it; concurrent savers take turns under a lock beside the file.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path

from gridconv._atomic import write_text

FORMAT = "gridconv-wisdom"
VERSION = 2  # 2: training passes keyed apart (1 had forward keys only: still read)
READ = (1, 2)


def read(path: Path, methods: Collection[str]) -> dict[str, str] | None:
    """The entries of a wisdom file that name one of ``methods``; None (with a warning) if
    it is not a usable one."""
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):  # nothing saved there yet
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        warnings.warn(
            f"gridconv: ignoring wisdom file {path}: not readable JSON ({err}).", stacklevel=3
        )
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        warnings.warn(
            f"gridconv: ignoring {path}: not a gridconv wisdom file (no 'format': '{FORMAT}').",
            stacklevel=3,
        )
        return None
    entries = data.get("entries")
    if data.get("version") not in READ or not isinstance(entries, dict):
        warnings.warn(f"gridconv: ignoring {path}: wisdom of another version.", stacklevel=3)
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, str) and v in methods}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path`` (POSIX), so that concurrent savers merge in turn."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: atomic replace alone
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write(path: Path, entries: dict[str, str], methods: Collection[str]) -> None:
    """Merge ``entries`` into the file at ``path``, atomically; a warning, not an error, if it
    cannot be written or is not a wisdom file."""
    try:
        with _locked(path):
            existing = read(path, methods)
            if existing is None:
                warnings.warn(
                    f"gridconv: left {path} untouched: it is not a wisdom file.", stacklevel=3
                )
                return
            merged = {**existing, **entries}
            text = json.dumps(
                {"format": FORMAT, "version": VERSION, "entries": merged},
                indent=1,
                sort_keys=True,
            )
            write_text(path, text)
    except OSError as err:
        warnings.warn(f"gridconv: could not save wisdom to {path}: {err}.", stacklevel=3)
