"""When a Phase 2 stage's earlier output can be reused: same settings, complete, in today's format.

A personalization is reused when its record matches the config (ignoring settings that do not change
the weights); a fine-tuned detector when its settings stamp matches and its calibration bank holds
per-view evidence, as the scanner reads it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.phase2.loading import is_personalized, read_personalization
from training.phase2.personalize_config import PersonalizeConfig

SETTINGS_FILE = "phase2_settings.json"  # beside a fine-tuned detector: the settings it was made with
# Settings that change how a personalization runs, not what it learns.
_RUN_ONLY = {"resume", "device", "threads", "mixed_precision", "checkpoint_every", "keep_checkpoints"}


def saved_augmentation(record: dict[str, Any]) -> dict[str, object]:
    """What a saved personalization did to its training images. Folders written before it was recorded
    cropped a fixed corner when ``center_crop`` was off, never at random."""
    if "augmentation" in record:
        return dict(record["augmentation"])
    config = record.get("config", {})
    return {"random_flip": bool(config.get("random_flip", False)),
            "crop": "center" if config.get("center_crop", True) else "top-left"}


def same_training(record: dict[str, Any], pconfig: PersonalizeConfig) -> bool:
    """Whether a saved personalization or checkpoint (its "config" and "augmentation") was trained with
    ``pconfig``'s settings, run-only ones aside."""
    saved = dict(record.get("config", {}))
    # A setting added after a folder was written had its default then (e.g. lora_targets); the
    # augmentations' defaults changed, so a folder that does not record them was made without.
    defaults = asdict(PersonalizeConfig(method=pconfig.method, random_flip=False, center_crop=True))
    return (saved_augmentation(record) == pconfig.augmentation()
            and all(saved.get(k, defaults[k]) == v for k, v in asdict(pconfig).items() if k not in _RUN_ONLY))


def personalization_current(folder: Path, pconfig: PersonalizeConfig) -> bool:
    return is_personalized(folder) and same_training(read_personalization(folder), pconfig)


def personalization_stamp(folder: Path) -> dict[str, Any]:
    """What a finished personalization was trained with: a detector fine-tuned on its images is
    current only while this stays the same."""
    record = read_personalization(folder)
    config = {k: v for k, v in record.get("config", {}).items() if k not in _RUN_ONLY}
    return {"config": config, "augmentation": saved_augmentation(record)}


def bank_is_per_view(detector_dir: Path) -> bool:
    """Whether a detector folder's calibration bank holds per-view evidence; detectors written before
    it did (bits of one view) are fine-tuned again rather than reused."""
    from safetensors import safe_open

    from gwm_desktop.core.weights import CALIBRATION_FILE

    path = detector_dir / CALIBRATION_FILE
    if not path.exists():
        return False
    with safe_open(str(path), framework="pt") as bank:
        return len(bank.get_slice("clean_bits").get_shape()) == 3


def detector_current(folder: Path, settings: dict[str, Any]) -> bool:
    stamp = folder / SETTINGS_FILE
    return (stamp.exists() and json.loads(stamp.read_text()) == settings and (folder / "manifest.json").exists()
            and bank_is_per_view(folder))
