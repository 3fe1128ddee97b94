"""Find bundled resources the same way in development, in an installed tree and in a frozen app.

PyInstaller unpacks data next to ``sys._MEIPASS``; a wheel (``pip install .``) carries them inside
the package as ``gwm_desktop/_resources`` (setup.py copies them there); in a source checkout the
folder ``resources/`` sits beside the package. ``GWM_RESOURCES`` overrides all three (tests,
relocated installs).
"""

from __future__ import annotations

import os
import sys
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
