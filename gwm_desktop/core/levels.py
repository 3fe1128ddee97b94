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
    Level("invisible", 0.01, "Hardest to see; found in about 5 of 6 photos and paintings but only 2 in 5 flat-colour "
                             "images; crops, turns and bucket crops often lose it"),
    Level("very-subtle", 0.02, "Near invisible at full size; found in 19 of 20 photos and paintings and about 3 in 5 "
                               "flat-colour images; off-centre crops often lose it"),
    Level("subtle", 0.03, "Hard to see without a side-by-side; found in nearly every photo and painting and 7 in 8 "
                          "flat-colour images; off-centre crops often lose it"),
    Level("balanced", 0.05, "Recommended: survives recompression, resizing, centred crops and mirroring (and most bucket "
                            "and off-centre crops)"),
    Level("strong", 0.08, "Most robust: survives recompression, mirroring and bucket crops, and about 4 in 5 off-centre "
                          "crops; faint texture may show on flat areas"),
)
DEFAULT_LEVEL = "balanced"


def level_by_name(name: str) -> Level:
    for level in LEVELS:
        if level.name == name.lower():
            return level
    raise ValueError(f"unknown level {name!r}; choose one of {', '.join(level.name for level in LEVELS)}")
