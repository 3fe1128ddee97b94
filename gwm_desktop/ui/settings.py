"""Persistent UI settings (QSettings): one typed accessor per setting, defaults in one place."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

from training.phase2_methods import DEFAULT_STEPS

DEFAULTS: dict[str, Any] = {
    "profile": "default",
    "level": "balanced",
    "output_dir": "",
    "format": "same",
    "jpeg_quality": 95,
    "keep_metadata": True,
    "scan_fpr": 0.01,
    "scan_model_verdict": False,  # Scan tab: treat the images as one model's outputs
    "theme": "system",         # system | light | dark
    "device": "auto",
    "first_run_done": False,
    "last_folder": "",
    "advanced_data": "",
    "advanced_steps": 200,
    "advanced_batch": 4,
    "phase2_base": "",
    "phase2_images": "",
    "phase2_methods": "lora",
    "phase2_prompts": "art",
    **{f"phase2_steps_{method}": steps for method, steps in DEFAULT_STEPS.items()},
    "phase2_lora_targets": "attention",
    "phase2_level": "balanced",
    "phase2_share": "all",
}


class Settings:
    """Thin typed wrapper; pass a QSettings (tests use an ini file in a temp folder)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or QSettings("GenWatermark", "gwm-desktop")

    def get(self, key: str) -> Any:
        default = DEFAULTS[key]
        value = self.q.value(key, default)
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
        if isinstance(default, int):
            try:
                return int(value)
            except (TypeError, ValueError):
                return default
        if isinstance(default, float):
            try:
                return float(value)
            except (TypeError, ValueError):
                return default
        return value if value is not None else default

    def set(self, key: str, value: Any) -> None:
        if key not in DEFAULTS:
            raise KeyError(key)
        self.q.setValue(key, value)

    def get_bytes(self, key: str) -> Any:
        return self.q.value(key)

    def set_bytes(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    def sync(self) -> None:
        self.q.sync()
