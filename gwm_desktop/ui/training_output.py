"""The Advanced tab's output side: the live training curves, the log and a finished run's report."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTabWidget, QTextBrowser, QVBoxLayout, QWidget

from gwm_desktop.ui.loss_plot import LossPlot


class TrainingOutput(QWidget):
    def __init__(self, curves: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = LossPlot(curves)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setAccessibleName("Training log")
        self.log.setFont(QFont("monospace"))
        self.log.setPlaceholderText("The training log appears here.")
        self.report_view = QTextBrowser()
        self.report_view.setAccessibleName("Training report")
        self.report_view.setPlaceholderText("A finished Phase 2 run's report (held-out accuracy per method) "
                                            "appears here.")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log, "Log")
        self.tabs.addTab(self.report_view, "Report")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Training curves"))
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.tabs, 2)
