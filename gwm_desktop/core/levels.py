"""Named invisibility levels and the LPIPS budget ``p`` each maps to (smaller p: less visible)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Level:
    name: str
    p: float
    description: str

    @property
    def title(self) -> str:
        """The name as the app shows it: "very-subtle" -> "Very subtle"."""
        return self.name.replace("-", " ").capitalize()


# What each level buys, as measured on held-out art (README, "Every level"): found at the scan's 1% rate,
# and seen or not by a blind viewer comparing the copy with the original, enlarged 3x.
LEVELS: tuple[Level, ...] = (
    Level("invisible", 0.01, "Hardest to see: beside the original, enlarged, hidden on most photos and paintings, "
                             "but a fine texture shows on flat colour art. Found in most images as exported (fewer "
                             "flat colour ones); bucket crops and turns often lose it, off-centre crops usually do"),
    Level("very-subtle", 0.02, "Seen only on close comparison with the original on some photos and paintings, "
                               "plainly on flat colour art. Survives recompression, resizing, mirroring and most "
                               "bucket crops and turns; off-centre crops lose it about 1 time in 4, and flat colour "
                               "art loses more"),
    Level("subtle", 0.03, "A faint mottling on close comparison with the original, plainly on flat colour art. "
                          "Survives recompression, resizing, mirroring and bucket crops, and most turns and "
                          "off-centre crops (fewer on flat colour art)"),
    Level("balanced", 0.05, "Recommended: survives recompression, resizing, mirroring, bucket crops and nearly "
                            "all turns, and about 9 in 10 off-centre crops. A mottling shows beside the original, at "
                            "a glance on about 2 images in 3 and on all flat colour art"),
    Level("strong", 0.08, "Most robust: survives every standard edit, bucket crops and nearly all turns, and at "
                          "least 9 in 10 off-centre crops. Mottling shows plainly when compared with the "
                          "original"),
)
DEFAULT_LEVEL = "balanced"


def level_by_name(name: str) -> Level:
    for level in LEVELS:
        if level.name == name.lower():
            return level
    raise ValueError(f"unknown level {name!r}; choose one of {', '.join(level.name for level in LEVELS)}")
