"""Training checkpoints: ``step_000200.pt`` files, the newest K kept, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gwm_desktop.core.atomic import write_atomic


def save_checkpoint(state: dict[str, Any], folder: Path, step: int, keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:06d}.pt"
    write_atomic(path, lambda temp: torch.save(state, temp))
    for old in sorted(folder.glob("step_*.pt"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("step_*.pt")) if folder.is_dir() else []
    return found[-1] if found else None
