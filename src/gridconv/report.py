"""The demo's report: ``index.html`` (self-contained, opens from disk, links its PNGs) and
``results.json`` beside it. The first screen states each claim, what was measured and the
verdict, which the experiments computed from their measurements."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from gridconv._atomic import write_json, write_text
from gridconv.experiments import Result

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.2em; color: #222; }
h1 { margin: 0.2em 0; } .meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0 1.2em; }
th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
.verdict { white-space: nowrap; font-weight: 600; border-radius: 4px; padding: 2px 8px; }
.yes { background: #dff3e2; color: #17692a; } .no { background: #fde7e1; color: #9b2c10; }
.failed { background: #eee; color: #555; }
section { border-top: 2px solid #eee; margin-top: 1.5em; padding-top: 0.5em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; } pre { background: #f6f6f6; padding: 8px; }
.records td, .records th { font-size: 12px; padding: 3px 6px; }
"""


def verdict_label(result: Result) -> tuple[str, str]:
    """The verdict's text and CSS class."""
    if result.error is not None:
        return "failed", "failed"
    if result.supported:
        return "supported", "yes"
    return "not supported", "no"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def _records_table(records: list[dict[str, Any]]) -> str:
    if not records:
        return ""
    columns = list(dict.fromkeys(key for r in records for key in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in records
    )
    return f'<table class="records"><tr>{head}</tr>{rows}</table>'


def render(results: list[Result], meta: dict[str, Any]) -> str:
    """The report's HTML."""
    e = html.escape
    summary = []
    sections = []
    for i, r in enumerate(results, 1):
        label, css = verdict_label(r)
        measured = r.measured if r.error is None else f"failed: {r.error}"
        summary.append(
            f'<tr><td>{i}</td><td><a href="#{e(r.name)}">{e(r.title)}</a></td>'
            f"<td>{e(r.claim)}</td><td>{e(measured)}</td>"
            f'<td><span class="verdict {css}">{label}</span></td></tr>'
        )
        figures = "".join(
            f'<figure><img src="{e(f["file"])}" alt="{e(f["caption"])}">'
            f"<figcaption>{e(f['caption'])}</figcaption></figure>"
            for f in r.figures
        )
        error = f"<pre>{e(r.error)}</pre>" if r.error else ""
        sections.append(
            f'<section id="{e(r.name)}"><h2>{i}. {e(r.title)}</h2>'
            f"<p><b>Claim.</b> {e(r.claim)}</p><p><b>Measured.</b> {e(measured)}</p>"
            f'<p><b>Verdict.</b> <span class="verdict {css}">{label}</span> '
            f'<span class="meta">({r.seconds:.1f} s)</span></p>'
            f"{error}{figures}{_records_table(r.records)}</section>"
        )
    settings = ", ".join(f"{k} {v}" for k, v in meta.items())
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>gridconv: the convolution chapter's claims, measured</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>The convolution chapter's claims, measured</h1>"
        f'<p class="meta">{e(settings)}. Verdicts are computed from the measurements by each '
        "experiment's stated rule; raw numbers are in results.json.</p>"
        "<table><tr><th>#</th><th>experiment</th><th>claim</th><th>measured</th>"
        f"<th>verdict</th></tr>{''.join(summary)}</table>{''.join(sections)}</body></html>\n"
    )


def write(results: list[Result], out: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``index.html`` and ``results.json`` to ``out``; returns the HTML's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json({"meta": meta, "experiments": [r.as_dict() for r in results]}, out / "results.json")
    page = out / "index.html"
    write_text(page, render(results, meta))
    return page


def load(path: str | Path) -> tuple[list[Result], dict[str, Any]]:
    """Read a ``results.json`` back: the results and the run's meta data."""
    value = json.loads(Path(path).read_text())
    return [Result.from_dict(r) for r in value["experiments"]], value["meta"]
