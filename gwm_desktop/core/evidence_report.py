"""The evidence report of a model-level verdict: an HTML page a person can show others, and the same
facts as JSON beside it.

It states the test and its assumptions in plain words, the numbers (n, p-value, effect), every
image's score with a thumbnail, the profile's key fingerprint (a hash with its own label, never the
key), the app and model versions, the date, and the protection log's summary (when the artist
protected their images: a record kept on the artist's own machine with its clock, so it supports,
but on its own cannot prove, that the watermark predates the model).
"""

from __future__ import annotations

import hashlib
import html
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.profiles import Profile
from gwm_desktop.core.protection_log import summarize
from gwm_desktop.core.reports import as_utf8, thumbnail_uri
from gwm_desktop.core.verdict import VerdictResult
from gwm_desktop.core.verdict_text import details, headline

MAX_THUMBNAILS = 500

ASSUMPTIONS = (
    "The question: did the model that made these images learn your watermark? The test compares your "
    "secret key with {keys} random keys. Each image is tested against every key as the scan tests it "
    "(how far that key stands out among a fixed set of reference keys); these results are added up over "
    "the images per key. If the model never learned your watermark, nothing in its images can prefer "
    "your key over a random one, so your key ranks anywhere among the random keys with equal chance. The "
    "p-value is how often a random key does at least as well as yours: small means your key stands out.",
    "What it assumes: the images were scanned with the shipped detector, which was never trained on your "
    "key (a detector fine-tuned on your key is not used for this test), and your key was made at random "
    "(the app does this). It assumes nothing about what the images look like. It does not say who trained "
    "the model or on which images; only that the model's images carry your watermark's textures more "
    "than chance allows.",
)


def key_fingerprint(key: bytes) -> str:
    """A short public name for a key: SHA-256 with its own label, so it reveals neither key nor message."""
    digest = hashlib.sha256(b"gwm-key-fingerprint-v1" + key).hexdigest()[:16]
    return " ".join(digest[i:i + 4] for i in range(0, 16, 4))


def app_version() -> str:
    try:
        return metadata.version("gwm-desktop")
    except metadata.PackageNotFoundError:
        return "unknown"


def model_version(manifest: dict[str, Any]) -> str:
    """The weights' hash and the architecture's (the same weights read with another search, e.g. more
    shift peaks, give other evidence)."""
    weights = manifest.get("files", {}).get("model.safetensors", "")
    architecture = hashlib.sha256(json.dumps(manifest.get("architecture", {}), sort_keys=True).encode()).hexdigest()
    return (f"{manifest.get('format', 'unknown')} (weights sha256 {weights[:12] or 'unknown'}, "
            f"architecture sha256 {architecture[:12]})")


def report_facts(result: VerdictResult, profile: Profile, manifest: dict[str, Any]) -> dict[str, Any]:
    """Everything the report states, as JSON-ready data."""
    log = summarize(profile.folder)
    return {"format": "gwm-evidence-v1", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "headline": headline(result), "profile": profile.name, "key_fingerprint": key_fingerprint(profile.key),
            "app_version": app_version(), "model_version": model_version(manifest),
            "protection_log": {"count": log.count, "first": log.first, "last": log.last, "summary": log.sentence()},
            "verdict": result.to_json()}


def _image_rows(result: VerdictResult) -> str:
    rows = []
    order = sorted(result.images, key=lambda c: c.z, reverse=True)
    for index, item in enumerate(order):
        uri = thumbnail_uri(item.path) if index < MAX_THUMBNAILS else ""
        image = f'<img src="{uri}" alt="">' if uri else ""
        rows.append(f"<tr><td>{image}</td><td>{html.escape(as_utf8(item.path))}</td><td>{item.agreement:.3f}</td>"
                    f"<td>{item.z:+.2f}</td><td>{item.p_value:.3g}</td></tr>")
    for path, reason in result.errors:
        rows.append(f'<tr class="error"><td></td><td>{html.escape(as_utf8(path))}</td><td colspan="3">'
                    f"not tested: {html.escape(reason)}</td></tr>")
    return "\n".join(rows)


def render_html(facts: dict[str, Any], result: VerdictResult) -> str:
    esc = html.escape
    assumptions = "".join(f"<p>{esc(text.format(keys=f'{result.null_keys:,}'))}</p>" for text in ASSUMPTIONS)
    numbers = "".join(f"<li>{esc(line)}</li>" for line in details(result).splitlines())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>GenWatermark evidence report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 60em; }}
.headline {{ font-size: 1.25em; padding: .8em; border-left: 6px solid {"#2e7d32" if result.verdict else "#888"};
            background: #f6f6f6; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px; text-align: left; vertical-align: middle; }}
tr.error td {{ color: #8a6d00; }} img {{ max-width: 96px; max-height: 96px; }}
dt {{ font-weight: bold; }} code {{ font-size: 1.05em; }}
</style></head><body>
<h1>GenWatermark evidence report</h1>
<p class="headline">{esc(facts["headline"])}</p>
<h2>The numbers</h2><ul>{numbers}</ul>
<h2>What was tested, and what it assumes</h2>{assumptions}
<h2>Protection record</h2>
<p>{esc(facts["protection_log"]["summary"])} Each export's SHA-256 is kept in the profile's protection log,
so a protected file can be matched to its record. The log is kept on this computer and dated by its
clock: dated copies you published or sent (or a timestamping service) are what make the dates hard to
dispute.</p>
<dl><dt>Profile</dt><dd>{esc(facts["profile"])}</dd>
<dt>Key fingerprint</dt><dd><code>{esc(facts["key_fingerprint"])}</code> (a one-way hash; the key itself is
never shown)</dd>
<dt>App version</dt><dd>{esc(facts["app_version"])}</dd><dt>Model</dt><dd>{esc(facts["model_version"])}</dd>
<dt>Date</dt><dd>{esc(facts["date"])}</dd></dl>
<h2>Each image</h2>
<p>Agreement with your key (-1..1); z: how far above random keys this image alone stands; p: this image
alone.</p>
<table><thead><tr><th></th><th>Path</th><th>Agreement</th><th>z</th><th>p (this image)</th></tr></thead>
<tbody>
{_image_rows(result)}
</tbody></table></body></html>
"""


def write_evidence_report(result: VerdictResult, profile: Profile, manifest: dict[str, Any], path: Path) -> Path:
    """Write the HTML report at ``path`` and its JSON beside it (same name, .json), both or neither;
    returns the JSON path."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"the evidence report must end in .html, got {path}")
    facts = report_facts(result, profile, manifest)
    json_path = path.with_suffix(".json")
    page, record = render_html(facts, result).encode("utf-8"), (json.dumps(facts, indent=2) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, page)
    try:
        write_atomic(json_path, record)
    except BaseException:
        path.unlink(missing_ok=True)  # both files or neither
        raise
    return json_path
