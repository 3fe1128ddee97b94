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


LEVELS: tuple[Level, ...] = (
    Level("invisible", 0.01, "Hardest to see; misses about 1 in 7 photos and paintings and most flat-colour art"),
    Level("very-subtle", 0.02, "Near invisible at full size"),
    Level("subtle", 0.03, "Hard to see without a side-by-side"),
    Level("balanced", 0.05, "Recommended: survives recompression, resizing, centred crops and mirroring (most bucket crops)"),
    Level("strong", 0.08, "Most robust; faint texture may show on flat areas"),
)
DEFAULT_LEVEL = "balanced"


def level_by_name(name: str) -> Level:
    for level in LEVELS:
        if level.name == name.lower():
            return level
    raise ValueError(f"unknown level {name!r}; choose one of {', '.join(level.name for level in LEVELS)}")
