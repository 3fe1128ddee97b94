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


# What each level buys, as measured on held-out art (README, "Every level"): found at the scan's 1% rate.
LEVELS: tuple[Level, ...] = (
    Level("invisible", 0.01, "Hardest to see; found in most images as exported (fewer on flat colour art), but "
                             "bucket crops and turns often lose it and off-centre crops usually do"),
    Level("very-subtle", 0.02, "Near invisible at full size; survives recompression, resizing, mirroring and most "
                               "bucket crops and turns; off-centre crops lose it about 1 time in 4, and flat colour "
                               "art loses more"),
    Level("subtle", 0.03, "Hard to see without a side-by-side; survives recompression, resizing, mirroring and "
                          "bucket crops, and most turns and off-centre crops (fewer on flat colour art)"),
    Level("balanced", 0.05, "Recommended: survives recompression, resizing, mirroring, bucket crops and nearly "
                            "all turns, and about 9 in 10 off-centre crops"),
    Level("strong", 0.08, "Most robust: survives every standard edit, bucket crops and nearly all turns, and at "
                          "least 9 in 10 off-centre crops; faint texture may show on flat areas"),
)
DEFAULT_LEVEL = "balanced"


def level_by_name(name: str) -> Level:
    for level in LEVELS:
        if level.name == name.lower():
            return level
    raise ValueError(f"unknown level {name!r}; choose one of {', '.join(level.name for level in LEVELS)}")
