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
    Level("invisible", 0.01, "Hardest to see; found in nearly every image as exported, but bucket crops and turns "
                             "often lose it and off-centre crops usually do"),
    Level("very-subtle", 0.02, "Near invisible at full size; survives recompression, resizing and mirroring and "
                               "most bucket crops and turns; off-centre crops lose it about 1 time in 4"),
    Level("subtle", 0.03, "Hard to see without a side-by-side; survives recompression, resizing, mirroring, bucket "
                          "crops and turns, and at least 4 in 5 off-centre crops"),
    Level("balanced", 0.05, "Recommended: survives recompression, resizing, mirroring, bucket crops and turns, "
                            "and about 19 in 20 off-centre crops"),
    Level("strong", 0.08, "Most robust: survived every edit and training crop measured, off-centre crops "
                          "included; faint texture may show on flat areas"),
)
DEFAULT_LEVEL = "balanced"


def level_by_name(name: str) -> Level:
    for level in LEVELS:
        if level.name == name.lower():
            return level
    raise ValueError(f"unknown level {name!r}; choose one of {', '.join(level.name for level in LEVELS)}")
