"""The verdict on one scanned image, in one place: which it is, and the words for it.

Torch-free, so the GUI's results table can use it without loading the detector's modules.
"""

from __future__ import annotations

from typing import Protocol

# "found": carries the profile's watermark; "clean": does not; "error": could not be read.
VERDICT_TEXT = {"found": "watermark found", "clean": "not found", "error": "error"}


class Scanned(Protocol):
    flagged: bool
    error: str | None
    p_value: float | None


def verdict_of(result: Scanned) -> str:
    """'found', 'clean' or 'error' (a read error wins over any score)."""
    return "error" if result.error else ("found" if result.flagged else "clean")


def verdict_text(result: Scanned) -> str:
    """The verdict in words, for reports and the results table."""
    return VERDICT_TEXT[verdict_of(result)]


def p_value_text(result: Scanned) -> str:
    """The key-rank test's p in words (empty when the scan had none: a Phase 2 detector's threshold)."""
    p = result.p_value
    if p is None or result.error:
        return ""
    return f"p = {p:.3g} (about 1 in {max(1, round(1 / p)):,}): how often a random key matches this image as well as yours"
