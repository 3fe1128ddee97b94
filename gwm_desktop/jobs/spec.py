"""What a training job is asked to do (``JobSpec``) and what it hands back (``JobOutcome``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class JobSpec:
    kind: str
    data: list[str]
    out: str
    steps: int = 200
    batch_size: int = 4
    device: str = "auto"
    resume: bool = False
    init_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobOutcome:
    model_dir: Path | None
    steps_done: int
    note: str = ""                                    # where the result is; further lines: headline figures
    report: str = ""                                  # markdown the tab shows after the run (Phase 2)
    heldout: tuple[list[Path], list[Path]] | None = None  # (clean, watermarked) images to judge the new detector
                                                      # on before installing it; None: watermark the job's images
