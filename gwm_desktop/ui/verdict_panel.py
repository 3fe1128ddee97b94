"""The Scan tab's model-level verdict: treat the scanned images as one model's outputs and say, in
plain words, how strongly they show this profile's watermark (``core.verdict``; wording from
``core.verdict_text``), with the numbers behind a Details button and an evidence report to save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gwm_desktop.ui.context import AppContext
from gwm_desktop.ui.workers import JobRunner

# Left-border colour of the headline by grade: readable on light and dark themes alike.
GRADE_COLOURS = {"Strong evidence": "#2e7d32", "Evidence": "#558b2f", "Weak evidence": "#f9a825",
                 "No evidence": "#9e9e9e"}


class VerdictPanel(QFrame):
    """A switch, the verdict in words, Details, and "Save evidence report…"."""

    verdict_finished = Signal(object)  # the VerdictResult, or None (stopped, or nothing readable)

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.runner = JobRunner(self)
        self.result: Any = None
        self._profile: Any = None
        self._earlier: str | None = None
        self._build()
        self._show_result(None)

    def _build(self) -> None:
        self.switch = QCheckBox("Treat these images as one model's outputs")
        self.switch.setAccessibleName("Model-level verdict")
        self.switch.setToolTip("For images made by one model (its sample gallery, or images you generated with it): "
                               "after the scan, test whether that model learned your watermark, with all images "
                               "together. Stronger than any single image's score.")
        self.switch.setChecked(bool(self.context.settings.get("scan_model_verdict")))
        self.switch.toggled.connect(lambda on: self.context.settings.set("scan_model_verdict", bool(on)))
        self.status = QLabel("")
        self.headline = QLabel("")
        self.headline.setWordWrap(True)
        self.headline.setAccessibleName("Model verdict")
        font = self.headline.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.headline.setFont(font)
        # The grade's colour as a bar beside the words: a style sheet on the label itself would pin
        # its text colour and miss a later light/dark theme switch.
        self.grade_bar = QFrame()
        self.grade_bar.setFixedWidth(6)
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(lambda on: self.details.setVisible(on))
        self.save_button = QPushButton("Save evidence report…")
        self.save_button.clicked.connect(lambda: self.save_report())
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setVisible(False)
        self.details.setAccessibleName("Verdict details")
        top = QHBoxLayout()
        top.addWidget(self.switch)
        top.addWidget(self.status, 1)
        result_row = QHBoxLayout()
        result_row.addWidget(self.grade_bar)
        result_row.addWidget(self.headline, 1)
        result_row.addWidget(self.details_button)
        result_row.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addLayout(top)
        layout.addLayout(result_row)
        layout.addWidget(self.details)

    @property
    def enabled(self) -> bool:
        return self.switch.isChecked()

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def start(self, inputs: list[Path], profile: Any, earlier: str | None = None) -> bool:
        """Run the verdict over ``inputs`` for ``profile`` on a worker (``earlier``: with that earlier
        shipped model, as the scan was); False when it cannot start."""
        engine = self.context.engine
        if engine is None or not inputs or self.runner.busy:
            return False
        self._profile, self._earlier = profile, earlier
        self._show_result(None)
        self.status.setText("Testing the images together against random keys…")
        worker = self.runner.start(lambda cancel: engine.verdict_files(list(inputs), profile, cancel=cancel,
                                                                       earlier=earlier), "verdict")
        worker.yielded.connect(self._on_progress)
        worker.errored.connect(lambda message, _t: self._finish(f"Verdict stopped: {message}"))
        worker.aborted.connect(lambda: self._finish("Verdict cancelled"))
        worker.returned.connect(lambda _r: self._finish(None))
        self.runner.launch()
        return True

    def clear(self) -> None:
        self.status.setText("")
        self._show_result(None)

    def cancel(self) -> None:
        self.runner.cancel()

    def _on_progress(self, progress: Any) -> None:
        from gwm_desktop.core.verdict import ImageEvidence

        if isinstance(progress.payload, ImageEvidence):
            self.status.setText(f"Reading image {progress.done} of {progress.total}…")
        else:
            self.result = progress.payload

    def _finish(self, stopped: str | None) -> None:
        if stopped is None and self.result is None:
            stopped = "No readable images to test"
        self.status.setText(stopped or "")
        self._show_result(None if stopped else self.result)
        self.verdict_finished.emit(None if stopped else self.result)

    def _show_result(self, result: Any) -> None:
        self.result = result
        for widget in (self.grade_bar, self.headline, self.details_button, self.save_button):
            widget.setVisible(result is not None)
        self.details.setVisible(result is not None and self.details_button.isChecked())
        if result is None:
            return
        from gwm_desktop.core.verdict_text import decided_grade, details, headline

        self.grade_bar.setStyleSheet(f"background: {GRADE_COLOURS[decided_grade(result)]};")
        self.headline.setText(headline(result))
        self.details.setText(details(result) + "\n\nTested with the shipped detector, which never learned your key "
                             "(a detector fine-tuned on your key would not give a fair comparison).")

    def save_report(self, path: Path | None = None) -> bool:
        if self.result is None or self.runner.busy:
            return False
        if not path:
            start = str(Path(self.context.settings.get("last_folder") or Path.home()) / "evidence-report.html")
            chosen, _ = QFileDialog.getSaveFileName(self, "Save evidence report", start, "HTML report (*.html)")
            if not chosen:
                return False
            path = Path(chosen)
            if path.suffix.lower() not in (".html", ".htm"):
                path = path.with_name(path.name + ".html")  # a name typed without the extension
                # The dialog asked about the name as typed; ask again for the one written.
                if path.exists() and QMessageBox.question(
                        self, "Replace report?", f"{path.name} already exists. Replace it?") \
                        != QMessageBox.StandardButton.Yes:
                    return False
        from gwm_desktop.core.evidence_report import write_evidence_report

        try:
            manifest = self.context.engine.shipped(self._earlier).manifest
            json_path = write_evidence_report(self.result, self._profile, manifest, Path(path))
        except (OSError, ValueError) as error:
            QMessageBox.warning(self, "Report not saved", f"Could not save the evidence report:\n{error}")
            return False
        self.context.say(f"Evidence report saved to {path} (and {json_path.name})")
        return True

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        return self.runner.shutdown(timeout_s)
