"""Scan reports a person can read: CSV for spreadsheets, HTML with thumbnails for everyone else."""

from __future__ import annotations

import base64
import csv
import html
import io
import time
from collections.abc import Sequence
from pathlib import Path

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.detect import ScanResult
from gwm_desktop.core.image_io import load_thumbnail
from gwm_desktop.core.scan_verdict import verdict_of, verdict_text

MAX_HTML_THUMBNAILS = 2000


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode("utf-8"))


def as_utf8(text: str | Path) -> str:
    """Text a UTF-8 report can hold: bytes of a file name that were not UTF-8 become U+FFFD."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def write_csv(results: Sequence[ScanResult], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "score", "agreement", "p_value", "flagged", "verdict", "error"])
    for r in results:
        writer.writerow([as_utf8(r.path), "" if r.score is None else f"{r.score:.4f}",
                         "" if r.agreement is None else f"{r.agreement:.4f}",
                         "" if r.p_value is None else f"{r.p_value:.6g}", r.flagged, verdict_text(r),
                         as_utf8(r.error or "")])
    _write_text(Path(path), buffer.getvalue())


def thumbnail_uri(path: Path) -> str:
    try:
        thumb = load_thumbnail(path, 96).convert("RGB")
    except Exception:  # a report must not fail on one unreadable image
        return ""
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def write_html(results: Sequence[ScanResult], path: Path, profile_name: str, fpr: float,
               watermark: str | None = None) -> None:
    """``watermark``: which one was looked for, when not this version's (e.g. an earlier model's)."""
    looked_for = f"Looked for the watermark of {html.escape(watermark)}.\n" if watermark else ""
    flagged = sum(r.flagged for r in results)
    errors = sum(bool(r.error) for r in results)
    test_note = ("<p>p: how often random keys match an image as well as this profile's key. An image is "
                 f"flagged when p is at most {fpr:.2%}: on average over keys, at most that share of images that "
                 "do not carry a key's watermark are flagged for it, whatever they look like.</p>"
                 if any(r.p_value is not None for r in results) else "")
    rows = []
    for index, r in enumerate(results):
        uri = thumbnail_uri(r.path) if index < MAX_HTML_THUMBNAILS and not r.error else ""
        image = f'<img src="{uri}" alt="">' if uri else ""
        score = "" if r.score is None else f"{r.score:.3f}"
        p_value = "" if r.p_value is None or r.error else f"{r.p_value:.3g}"
        css = {"found": "hit", "clean": "miss", "error": "error"}[verdict_of(r)]
        rows.append(f'<tr class="{css}"><td>{image}</td><td>{html.escape(as_utf8(r.path))}</td><td>{score}</td>'
                    f"<td>{p_value}</td><td>{html.escape(verdict_text(r))}</td>"
                    f"<td>{html.escape(as_utf8(r.error or ''))}</td></tr>")
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GenWatermark scan report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px; text-align: left; vertical-align: middle; }}
tr.hit td {{ background: #fdecea; }} tr.error td {{ color: #8a6d00; }}
img {{ max-width: 96px; max-height: 96px; }}
</style></head><body>
<h1>GenWatermark scan report</h1>
<p>Profile <b>{html.escape(as_utf8(profile_name))}</b>, verdicts at a false-positive rate of {fpr:.2%}.
{looked_for}{len(results)} images: <b>{flagged}</b> carry this profile's watermark, {errors} could not be read.
Generated {time.strftime('%Y-%m-%d %H:%M')}.</p>
{test_note}
<table><thead><tr><th></th><th>Path</th><th>Score</th><th>p</th><th>Verdict</th><th>Error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    _write_text(Path(path), document)


def write_report(results: Sequence[ScanResult], path: Path, profile_name: str, fpr: float,
                 watermark: str | None = None) -> None:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        write_csv(results, path)
    elif suffix in (".html", ".htm"):
        write_html(results, path, profile_name, fpr, watermark)
    else:
        raise ValueError(f"report must end in .csv or .html, got {path}")
