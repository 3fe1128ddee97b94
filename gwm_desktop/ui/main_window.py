"""The main window: profile bar, the three tabs, status bar with the device, first-run hint, clean close."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gwm_desktop.ui import theme
from gwm_desktop.ui.advanced_tab import AdvancedTab
from gwm_desktop.ui.context import AppContext
from gwm_desktop.ui.profile_bar import ProfileBar
from gwm_desktop.ui.protect_tab import ProtectTab
from gwm_desktop.ui.scan_tab import ScanTab

FIRST_RUN_HINT = ("<b>Welcome!</b> Drop your artwork on the Protect tab, pick how invisible the watermark should "
                  "be, and export protected copies to share online. Later, drop suspect AI images on the Scan tab "
                  "to see whether a model learned from your protected work. Your key stays on this computer: "
                  "back it up with Profile → Manage.")


class MainWindow(QMainWindow):
    def __init__(self, context: AppContext) -> None:
        super().__init__()
        self.context = context
        self.setWindowTitle("GenWatermark")
        self.setAccessibleName("GenWatermark main window")
        self.resize(1280, 800)

        self.profile_bar = ProfileBar(context)
        self.protect_tab = ProtectTab(context)
        self.scan_tab = ScanTab(context)
        self.advanced_tab = AdvancedTab(context)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Main tabs")
        self.tabs.addTab(self.protect_tab, "&Protect")
        self.tabs.addTab(self.scan_tab, "&Scan")
        self.tabs.addTab(self.advanced_tab, "&Advanced")

        self.hint = QFrame()
        self.hint.setObjectName("firstRunHint")
        self.hint.setFrameShape(QFrame.Shape.StyledPanel)
        hint_layout = QHBoxLayout(self.hint)
        hint_text = QLabel(FIRST_RUN_HINT)
        hint_text.setWordWrap(True)
        hint_text.setAccessibleName("First-run hint")
        dismiss = QPushButton("Got it")
        dismiss.clicked.connect(self.dismiss_hint)
        hint_layout.addWidget(hint_text, 1)
        hint_layout.addWidget(dismiss)
        self.hint.setVisible(not context.settings.get("first_run_done"))

        top = QHBoxLayout()
        title = QLabel("<b>GenWatermark</b> — invisible watermarks for your art")
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.profile_bar)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addLayout(top)
        layout.addWidget(self.hint)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.device_label = QLabel("Loading model…")
        self.device_label.setAccessibleName("Device in use")
        self.statusBar().addPermanentWidget(self.device_label)
        context.signals.status_message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        host = context.engine_host
        host.loading.connect(self._model_loading)
        host.ready.connect(self._model_ready)
        host.failed.connect(self._model_failed)
        self._build_menus()
        self._apply_hint_style()
        geometry = context.settings.get_bytes("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction("Add images to protect…", QKeySequence.StandardKey.Open, self._add_to_protect)
        file_menu.addSeparator()
        file_menu.addAction("Quit", QKeySequence.StandardKey.Quit, self.close)
        view = self.menuBar().addMenu("&View")
        for index, name in enumerate(("Protect", "Scan", "Advanced")):
            action = QAction(name, self)
            action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
            action.triggered.connect(lambda _=False, i=index: self.tabs.setCurrentIndex(i))
            view.addAction(action)
        view.addSeparator()
        group = QActionGroup(self)
        current = self.context.settings.get("theme")
        for key, text in (("system", "Follow system"), ("light", "Light"), ("dark", "Dark")):
            action = QAction(f"{text} theme", self, checkable=True)
            action.setChecked(key == current)
            action.triggered.connect(lambda _=False, k=key: self.set_theme(k))
            group.addAction(action)
            view.addAction(action)
        view.addSeparator()
        view.addAction("Show welcome hint", lambda: self.hint.setVisible(True))

    def _add_to_protect(self) -> None:
        self.tabs.setCurrentWidget(self.protect_tab)
        self.protect_tab.choose_files()

    def set_theme(self, name: str) -> None:
        self.context.settings.set("theme", name)
        theme.apply_theme(QApplication.instance(), name)
        self._apply_hint_style()
        self.update()

    def _apply_hint_style(self) -> None:
        dark = theme.current() == "dark"
        bg, border = ("#2b3a4f", "#4a6a94") if dark else ("#e8f0fb", "#9bb8e0")
        self.hint.setStyleSheet(f"#firstRunHint {{ background: {bg}; border: 1px solid {border}; border-radius: 6px; }}")

    def dismiss_hint(self) -> None:
        self.hint.setVisible(False)
        self.context.settings.set("first_run_done", True)

    def _model_loading(self, message: str) -> None:
        self.device_label.setText(message)
        self.statusBar().showMessage(message)

    def _model_ready(self, engine: Any) -> None:
        self.device_label.setText(f"Device: {engine.device_description}")
        self.statusBar().showMessage("Model ready", 4000)
        self.protect_tab.request_preview()

    def _model_failed(self, message: str) -> None:
        self.device_label.setText("Model not loaded")
        self.statusBar().showMessage(f"Could not load the model: {message}")

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        """Cancel running jobs and wait for them, so no file is left half-written."""
        self.statusBar().showMessage("Stopping running jobs…")
        QApplication.processEvents()
        ok = all([self.protect_tab.shutdown(timeout_s), self.scan_tab.shutdown(timeout_s),
                  self.advanced_tab.shutdown(timeout_s)])
        self.context.engine_host.wait(timeout_s)
        self.context.settings.set_bytes("geometry", self.saveGeometry())
        self.context.settings.sync()
        return ok

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        event.accept()


__all__ = ["MainWindow", "Qt"]
