"""Find bundled resources the same way in development, in an installed tree and in a frozen app.

PyInstaller unpacks data next to ``sys._MEIPASS``; in a source checkout the folder ``resources/``
sits beside the package. ``GWM_RESOURCES`` overrides both (tests, relocated installs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    override = os.environ.get("GWM_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
