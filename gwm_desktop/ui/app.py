"""Entry point of ``gwm-desktop``: show the window at once, load the model in the background."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gwm_desktop.core.atomic import install_sigterm_cleanup
from gwm_desktop.ui import theme
from gwm_desktop.ui.settings import Settings
from gwm_desktop.ui.window import build_window

__all__ = ["build_window", "main"]


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
