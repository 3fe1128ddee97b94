"""Find bundled resources the same way in development, in an installed tree and in a frozen app.

PyInstaller unpacks data next to ``sys._MEIPASS``; a wheel (``pip install .``) carries them inside
the package as ``gwm_desktop/_resources`` (setup.py copies them there); in a source checkout the
folder ``resources/`` sits beside the package. ``GWM_RESOURCES`` overrides all three (tests,
relocated installs).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALLED_NAME = "_resources"  # resources/ inside an installed package (setup.py)


def resources_dir() -> Path:
    override = os.environ.get("GWM_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    package = Path(__file__).resolve().parent
    installed = package / INSTALLED_NAME
    return installed if installed.is_dir() else package.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


@dataclass(frozen=True)
class EarlierModel:
    """A shipped model older exports may carry: a short label (a menu entry) and the long form (reports)."""

    label: str
    description: str


# By folder under resources/models ("default" is the engine's own model), the most recent first.
EARLIER_MODELS = {
    "2026-12-07": EarlierModel("Exports of 7 Dec 2026 (higher band)",
                               "exports made with the version of 7 December 2026 whose textures sat at 12 to 30 "
                               "cycles across (the higher band)"),
    "2026-12-02": EarlierModel("Exports from 2 to 7 Dec 2026",
                               "exports made from 2 to 7 December 2026 (the first isotropic watermark)"),
    "previous": EarlierModel("Exports before 2 Dec 2026",
                             "exports made before 2 December 2026 (the previous watermark)"),
}


def earlier_model_dir(name: str) -> Path | None:
    """The shipped folder of an earlier model, or None when this build does not carry it."""
    if name not in EARLIER_MODELS:
        raise ValueError(f"unknown shipped model {name!r}; choose from {', '.join(EARLIER_MODELS)}")
    folder = resource_path("models", name)
    return folder if (folder / "manifest.json").exists() else None
