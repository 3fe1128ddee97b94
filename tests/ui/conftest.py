"""Shared GUI fixtures: a temp GWM_HOME, temp settings, and a main window on the session's engine."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from tests.fixtures.bad_batch import photo_like_u8  # noqa: E402


@pytest.fixture
def gwm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "gwm-home"
    monkeypatch.setenv("GWM_HOME", str(home))
    return home


@pytest.fixture
def settings(tmp_path: Path):
    from gwm_desktop.ui.settings import Settings

    return Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def window(qtbot, gwm_home: Path, settings, engine, model_dir: Path):
    """The main window with the session's engine already loaded (as after 'Loading model…')."""
    from gwm_desktop.core.profiles import ProfileStore
    from gwm_desktop.ui.app import build_window

    store = ProfileStore(gwm_home)
    store.get_or_create_default()
    win = build_window(model_dir=model_dir, settings=settings, store=store, load_model=False)
    qtbot.addWidget(win)
    win.show()
    host = win.context.engine_host
    host.engine = engine
    host.ready.emit(engine)
    yield win
    win.shutdown(60)


def write_images(folder: Path, count: int, size: tuple[int, int] = (160, 128), seed: int = 0,
                 ext: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"art_{i:02d}.{ext}"
        Image.fromarray(photo_like_u8(size[1], size[0], seed=seed + i)).save(path)
        paths.append(path)
    return paths


def noise_images(folder: Path, count: int, size: int = 64) -> list[Path]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        path = folder / f"n{i}.png"
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out
