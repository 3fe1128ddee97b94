"""Entry point of ``gwm-desktop``: show the window at once, load the model in the background."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gwm_desktop.core.atomic import install_sigterm_cleanup
from gwm_desktop.ui import theme
from gwm_desktop.ui.context import AppContext
from gwm_desktop.ui.engine_host import EngineHost
from gwm_desktop.ui.settings import Settings


def build_window(model_dir: Path | None = None, settings: Settings | None = None, store=None,  # noqa: ANN001
                 load_model: bool = True):  # noqa: ANN201
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if "--self-test" in argv[1:]:  # a build check without a person: offscreen, temp home, exit 0 or 1
        from gwm_desktop.selftest import run_self_test

        return run_self_test()
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("GenWatermark")
    app.setOrganizationName("GenWatermark")
    app.setApplicationDisplayName("GenWatermark")
    settings = Settings()
    theme.apply_theme(app, settings.get("theme"))
    window = build_window(settings=settings)
    window.show()
    install_sigterm_cleanup(then=app.quit)  # SIGTERM: no temp file left behind, the window closes
    heartbeat = QTimer()  # Python runs signal handlers only between bytecodes: wake it now and then
    heartbeat.timeout.connect(lambda: None)
    heartbeat.start(500)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
