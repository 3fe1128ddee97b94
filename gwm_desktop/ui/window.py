"""The main window wired to its context, built by the app, the self-test and the screenshots script
(its own module, so the self-test can build it without importing the app that runs the self-test)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer

from gwm_desktop.ui.context import AppContext
from gwm_desktop.ui.engine_host import EngineHost
from gwm_desktop.ui.settings import Settings

if TYPE_CHECKING:
    from gwm_desktop.core.profiles import ProfileStore
    from gwm_desktop.ui.main_window import MainWindow


def build_window(model_dir: Path | None = None, settings: Settings | None = None, store: ProfileStore | None = None,
                 load_model: bool = True) -> MainWindow:
    """The main window wired to its context (tests call this with a temp store, settings and model)."""
    from gwm_desktop.ui.main_window import MainWindow

    settings = settings or Settings()
    host = EngineHost(model_dir, settings.get("device"))
    context = AppContext(store, settings, host, profile_name=settings.get("profile"))
    window = MainWindow(context)
    host.store_ready.connect(context.set_store)
    if load_model:
        # Start after the first paint: importing torch holds the GIL for seconds and would delay it.
        QTimer.singleShot(50, lambda: host.load(with_store=store is None))
    return window
