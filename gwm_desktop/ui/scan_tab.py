"""Scan tab: score folders of suspect images for this profile's watermark, at a stated false-positive rate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gwm_desktop.core.jobs import eta_seconds
from gwm_desktop.core.scan_verdict import VERDICT_TEXT
from gwm_desktop.resources import EARLIER_MODELS, earlier_model_dir
from gwm_desktop.ui.context import AppContext, format_eta
from gwm_desktop.ui.drop_helpers import install_drop
from gwm_desktop.ui.models import (
    FOLDER,
    NAME,
    PATH_ROLE,
    SCORE,
    THUMB,
    VERDICT,
    ScanFilterProxy,
    ScanResultsModel,
    ThumbnailCache,
)
from gwm_desktop.ui.verdict_panel import VerdictPanel
from gwm_desktop.ui.workers import JobRunner

FPR_CHOICES = ((0.001, "0.1 % (strict)"), (0.01, "1 % (recommended)"), (0.05, "5 % (lenient)"))
FLUSH_MS = 100


class ScanTab(QWidget):
    scan_finished = Signal(int)

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.settings = context.settings
        self.inputs: list[Path] = []
        self.thumbnails = ThumbnailCache(side=48, capacity=300, parent=self)
        self.model = ScanResultsModel(self.thumbnails, self)
        self.proxy = ScanFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.runner = JobRunner(self)
        self._buffer: list[Any] = []
        self._started = 0.0
        self._last_progress: Any = None
        self._inputs_used: list[Path] = []
        self._earlier_used: str | None = None
        self.flush_timer = QTimer(self)
        self.flush_timer.setInterval(FLUSH_MS)
        self.flush_timer.timeout.connect(self._flush)
        self._build()
        context.engine_host.ready.connect(lambda _e: self._refresh_enabled())
        self._refresh_enabled()

    def _build(self) -> None:
        self.add_files_button = QPushButton("Add images…")
        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.inputs_label = QLabel("Nothing to scan yet: drop suspect images or folders here")
        self.inputs_label.setAccessibleName("Scan inputs")
        self.inputs_label.setWordWrap(True)  # wraps rather than widen the window past 1280 px
        self.clear_inputs_button = QPushButton("Clear")
        self.clear_inputs_button.clicked.connect(self.clear_inputs)
        self.fpr_combo = QComboBox()
        self.fpr_combo.setAccessibleName("False-positive rate")
        self.fpr_combo.setToolTip("How often a clean image may be wrongly flagged. Lower: fewer false alarms, "
                                  "but faint watermarks may be missed.")
        for value, text in FPR_CHOICES:
            self.fpr_combo.addItem(text, value)
        saved = self.settings.get("scan_fpr")
        self.fpr_combo.setCurrentIndex(max(0, next((i for i, (v, _) in enumerate(FPR_CHOICES) if abs(v - saved) < 1e-9), 1)))
        # Which watermark to look for: this version's, or an earlier shipped model's (older exports).
        self.model_combo = QComboBox()
        self.model_combo.setAccessibleName("Watermark to look for")
        self.model_combo.setToolTip("Exports carry the watermark of the app version that made them. To check "
                                    "images protected with an earlier version, choose it here.")
        self.model_combo.addItem("This version's watermark", None)
        for name, earlier in EARLIER_MODELS.items():
            if earlier_model_dir(name) is not None:
                self.model_combo.addItem(earlier.label, name)
                self.model_combo.setItemData(self.model_combo.count() - 1, earlier.description[0].upper()
                                             + earlier.description[1:], Qt.ItemDataRole.ToolTipRole)
        self.model_label = QLabel("Look for:")
        for widget in (self.model_label, self.model_combo):
            widget.setVisible(self.model_combo.count() > 1)
        self.scan_button = QPushButton("Scan")
        self.scan_button.setDefault(True)
        self.scan_button.setToolTip("Look for this profile's watermark (Ctrl+Return)")
        self.scan_button.clicked.connect(self.start_scan)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_scan)
        top = QHBoxLayout()
        for widget in (self.add_files_button, self.add_folder_button, self.clear_inputs_button):
            top.addWidget(widget)
        top.addWidget(self.inputs_label, 1)
        top.addWidget(self.model_label)
        top.addWidget(self.model_combo)
        top.addWidget(QLabel("False positives:"))
        top.addWidget(self.fpr_combo)
        top.addWidget(self.scan_button)
        top.addWidget(self.cancel_button)

        self.progress = QProgressBar()
        self.progress.setAccessibleName("Scan progress")
        self.progress_label = QLabel("")
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.progress_label)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter by file or folder name (Ctrl+F)")
        self.filter_edit.setAccessibleName("Filter results")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text_filter)
        self.verdict_combo = QComboBox()
        self.verdict_combo.setAccessibleName("Show verdicts")
        for key, text in (("all", "All results"), ("found", VERDICT_TEXT["found"].capitalize()),
                          ("clean", VERDICT_TEXT["clean"].capitalize()), ("error", "Errors")):
            self.verdict_combo.addItem(text, key)
        self.verdict_combo.currentIndexChanged.connect(
            lambda _i: self.proxy.set_verdict_filter(self.verdict_combo.currentData()))
        self.counts_label = QLabel("")
        self.report_button = QPushButton("Save report…")
        self.report_button.setToolTip("Save the results as CSV or HTML (Ctrl+S)")
        self.report_button.clicked.connect(self.save_report)
        filter_row = QHBoxLayout()
        filter_row.addWidget(self.filter_edit, 2)
        filter_row.addWidget(self.verdict_combo)
        filter_row.addWidget(self.counts_label, 2)
        filter_row.addWidget(self.report_button)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Scan results")
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(SCORE, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(54)
        self.table.setIconSize(QSize(48, 48))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(THUMB, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(THUMB, 60)
        header.resizeSection(NAME, 280)
        header.resizeSection(SCORE, 80)
        header.resizeSection(VERDICT, 260)
        header.setSectionResizeMode(FOLDER, QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(self.open_index)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        install_drop(self.table, self.add_paths)
        install_drop(self, self.add_paths)

        self.empty_hint = QLabel(
            "Drop suspect images (for example, pictures a model generated in your style) or whole folders here, "
            "then press Scan. Each image gets a score and a verdict for the selected profile's watermark.")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setStyleSheet("padding: 12px;")

        self.verdict_panel = VerdictPanel(self.context, self)
        self.verdict_panel.switch.toggled.connect(self._verdict_switched)
        self.verdict_panel.runner.busy_changed.connect(lambda _b: self._refresh_enabled())

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(progress_row)
        layout.addWidget(self.verdict_panel)
        layout.addLayout(filter_row)
        layout.addWidget(self.empty_hint)
        layout.addWidget(self.table, 1)

        QShortcut(QKeySequence("Ctrl+Return"), self, self.start_scan)
        QShortcut(QKeySequence.StandardKey.Find, self, self.filter_edit.setFocus)
        QShortcut(QKeySequence.StandardKey.Save, self, self.save_report)

    # -- inputs --------------------------------------------------------------------------------
    def add_paths(self, paths: list[Path]) -> None:
        for path in paths:
            path = Path(path)
            if path not in self.inputs:
                self.inputs.append(path)
        self._describe_inputs()
        self._refresh_enabled()

    def clear_inputs(self) -> None:
        self.inputs.clear()
        self._describe_inputs()
        self._refresh_enabled()

    def _describe_inputs(self) -> None:
        if not self.inputs:
            self.inputs_label.setText("Nothing to scan yet: drop suspect images or folders here")
            return
        folders = sum(p.is_dir() for p in self.inputs)
        files = len(self.inputs) - folders
        parts = ([f"{folders} folder{'s' if folders != 1 else ''}"] if folders else []) + (
            [f"{files} file{'s' if files != 1 else ''}"] if files else [])
        self.inputs_label.setText("To scan: " + " and ".join(parts))
        self.inputs_label.setToolTip("\n".join(str(p) for p in self.inputs[:30]))

    def choose_files(self) -> None:
        from gwm_desktop.ui.protect_tab import IMAGE_FILTER

        files, _ = QFileDialog.getOpenFileNames(self, "Images to scan", self.settings.get("last_folder"), IMAGE_FILTER)
        if files:
            self.add_paths([Path(f) for f in files])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to scan", self.settings.get("last_folder"))
        if folder:
            self.add_paths([Path(folder)])

    # -- scan ----------------------------------------------------------------------------------
    def fpr(self) -> float:
        return float(self.fpr_combo.currentData())

    def _refresh_enabled(self) -> None:
        busy = self.runner.busy or self.verdict_panel.busy
        ready = self.context.engine is not None
        self.scan_button.setEnabled(ready and not busy and bool(self.inputs))
        self.scan_button.setText("Scan" if ready else "Loading model…")
        self.cancel_button.setEnabled(busy)
        for widget in (self.add_files_button, self.add_folder_button, self.clear_inputs_button, self.fpr_combo,
                       self.model_combo):
            widget.setEnabled(not busy)
        self.report_button.setEnabled(not busy and self.model.rowCount() > 0)
        has_rows = self.model.rowCount() > 0 or busy
        self.empty_hint.setVisible(not has_rows)

    def start_scan(self) -> bool:
        engine = self.context.engine
        if engine is None or not self.inputs or self.runner.busy or self.verdict_panel.busy:
            return False
        self.settings.set("scan_fpr", self.fpr())
        self.model.clear()
        self.verdict_panel.clear()  # a verdict describes the images of the scan it followed
        self._buffer.clear()
        self.counts_label.clear()
        self.progress.setRange(0, 0)
        self.progress_label.setText("Finding images…")
        self._started = time.monotonic()
        self._fpr_used = self.fpr()
        self._profile_used = self.context.profile()
        self._inputs_used = list(self.inputs)
        self._earlier_used = self.model_combo.currentData()
        inputs, profile, fpr, earlier = list(self.inputs), self._profile_used, self._fpr_used, self._earlier_used
        worker = self.runner.start(lambda cancel: engine.scan_files(inputs, profile, fpr, cancel, earlier), "scan")
        worker.yielded.connect(self._on_progress)
        worker.errored.connect(lambda message, _t: self._done(f"Scan stopped: {message}"))
        worker.aborted.connect(lambda: self._done("Scan cancelled"))
        worker.returned.connect(lambda _r: self._done(None))
        self.flush_timer.start()
        self.runner.launch()
        self._refresh_enabled()
        return True

    def _on_progress(self, progress: Any) -> None:
        self._buffer.append(progress.payload)
        self._last_progress = progress

    def _flush(self) -> None:
        """Move buffered results into the table: one insert per tick keeps 10,000 rows smooth."""
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.model.add_results(batch)
            self._refresh_enabled()
        progress = self._last_progress
        if progress is not None:
            self.progress.setRange(0, max(progress.total, 1))
            self.progress.setValue(progress.done)
            eta = format_eta(eta_seconds(progress.done, progress.total, self._started))
            self.progress_label.setText(f"Scanned {progress.done} of {progress.total}" + (f" · {eta}" if eta else ""))
            self._update_counts()

    def _update_counts(self) -> None:
        counts = self.model.counts()
        text = f"{counts['found']} with watermark · {counts['clean']} without"
        if counts["error"]:
            text += f" · {counts['error']} unreadable"
        earlier = "; previous watermark" if self._earlier_used else ""
        self.counts_label.setText(text + f"  (false-positive rate {self._fpr_used * 100:g} %{earlier})")

    def _done(self, stopped: str | None) -> None:
        self.flush_timer.stop()
        self._flush()
        self._last_progress = None
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self.progress_label.setText(stopped or f"Done: {self.model.rowCount()} images")
        self._update_counts()
        self.context.say(stopped or f"Scan finished: {self.counts_label.text()}")
        self._refresh_enabled()
        self.scan_finished.emit(self.model.rowCount())
        if stopped is None:
            self._verdict_switched(self.verdict_panel.enabled)

    def _verdict_switched(self, on: bool) -> None:
        """Switched on with results in the table (or a scan just finished): test them as one model's images."""
        if on and self._inputs_used and self.model.rowCount() and not self.runner.busy:
            self.verdict_panel.start(self._inputs_used, self._profile_used, self._earlier_used)

    def cancel_scan(self) -> None:
        if self.runner.busy:
            self.progress_label.setText("Cancelling…")
            self.runner.cancel()
        self.verdict_panel.cancel()

    # -- results -------------------------------------------------------------------------------
    def open_index(self, index: Any) -> None:
        path = self.proxy.data(index, PATH_ROLE)
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    def _context_menu(self, pos: Any) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        path = self.proxy.data(index, PATH_ROLE)
        menu = QMenu(self)
        menu.addAction("Open image", lambda: self.open_index(index))
        menu.addAction("Show in folder", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent))))
        menu.addAction("Copy path", lambda: QGuiApplication.clipboard().setText(path))
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def save_report(self, path: Path | None = None) -> bool:
        if not self.model.rowCount() or self.runner.busy:
            return False
        if not path:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save scan report", str(Path.home() / "scan-report.html"),
                                                    "HTML report (*.html);;CSV spreadsheet (*.csv)")
            if not chosen:
                return False
            path = Path(chosen)
        from gwm_desktop.core.reports import write_report

        try:
            watermark = EARLIER_MODELS[self._earlier_used].description if self._earlier_used else None
            write_report(self.model.results, Path(path), self._profile_used.name, self._fpr_used, watermark)
        except (OSError, ValueError) as error:
            QMessageBox.warning(self, "Report not saved", f"Could not save the report:\n{error}")
            return False
        self.context.say(f"Report saved to {path}")
        return True

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        ok = self.runner.shutdown(timeout_s)
        ok = self.verdict_panel.shutdown(timeout_s) and ok
        self.flush_timer.stop()
        self.thumbnails.close()
        return ok
