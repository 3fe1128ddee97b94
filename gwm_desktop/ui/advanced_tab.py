"""Advanced tab (power users): retrain on this machine with a live loss plot, log, cancel and resume."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gwm_desktop.core.jobs import eta_seconds
from gwm_desktop.jobs import detector
from gwm_desktop.jobs.phase1 import PHASE1_CURVES
from gwm_desktop.jobs.phase2 import earlier_outputs
from gwm_desktop.jobs.registry import JOBS, start
from gwm_desktop.jobs.spec import JobOutcome, JobSpec
from gwm_desktop.ui.context import AppContext, expand_inputs, format_eta
from gwm_desktop.ui.phase2_form import Phase2Form
from gwm_desktop.ui.training_output import TrainingOutput
from gwm_desktop.ui.workers import JobRunner

DEVICES = (("auto", "Automatic (GPU if available)"), ("cuda", "NVIDIA GPU (CUDA)"), ("mps", "Apple GPU (MPS)"),
           ("cpu", "CPU"))
RESUME_TIPS = {
    "phase1": "Continue from the latest checkpoint in the run folder",
    "phase2": "Reuse what the last Phase 2 run of this profile finished (watermarked images, personalised models, "
              "synthesized images, detectors made with the same settings) and continue an interrupted "
              "personalisation from its last checkpoint. Off: those results are deleted and Phase 2 starts over "
              "(you are asked first).",
}


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for widget in widgets:
        row.addWidget(widget)
    return row


class AdvancedTab(QWidget):
    job_finished = Signal(str)  # "done" | "cancelled" | "error"

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.settings = context.settings
        self.runner = JobRunner(self)
        self.outcome: JobOutcome | None = None
        self._eta_origin: tuple[float, int] | None = None
        self._stepped = False
        self._curves: tuple[str, ...] = ()
        self._build()
        context.signals.profile_changed.connect(lambda _p: self._profile_changed())
        self._profile_changed()
        self._refresh_enabled()

    def _build(self) -> None:
        intro = QLabel("For power users: retrain the watermark on your own machine. Training can take hours on a "
                       "CPU; it checkpoints as it goes, so you can cancel and resume later.")
        intro.setWordWrap(True)
        left = QVBoxLayout()
        left.addWidget(intro)
        left.addWidget(self._build_job_box())
        self._build_actions(left)
        left.addStretch(1)
        self.output = TrainingOutput(PHASE1_CURVES[:4])
        self.plot, self.log = self.output.plot, self.output.log
        self.report_view, self.output_tabs = self.output.report_view, self.output.tabs
        layout = QHBoxLayout(self)
        left_widget = QWidget()
        left_widget.setLayout(left)
        left_widget.setMaximumWidth(480)
        layout.addWidget(left_widget)
        layout.addWidget(self.output, 1)
        self._job_changed()

    def _build_job_box(self) -> QGroupBox:
        """The job, its inputs (Phase 1's or the Phase 2 form's rows, shown per job) and the run folder."""
        self.job_combo = QComboBox()
        self.job_combo.setAccessibleName("Training job")
        for job in JOBS.values():
            text = job.title if job.available() else f"{job.title} — {job.unavailable_reason()}"
            self.job_combo.addItem(text, job.kind)
            item = self.job_combo.model().item(self.job_combo.count() - 1)
            item.setEnabled(job.available())
            item.setToolTip(job.description)
        self.data_edit = QLineEdit(self.settings.get("advanced_data"))
        self.data_edit.setPlaceholderText("A folder of training images (photos, paintings…)")
        self.data_edit.setAccessibleName("Training images folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._choose_data)
        self.data_row = data_row = QHBoxLayout()
        data_row.addWidget(self.data_edit, 1)
        data_row.addWidget(browse)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1_000_000)
        self.steps_spin.setValue(self.settings.get("advanced_steps"))
        self.steps_spin.setAccessibleName("Training steps")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(self.settings.get("advanced_batch"))
        self.batch_spin.setAccessibleName("Batch size")
        self.device_combo = QComboBox()
        self.device_combo.setAccessibleName("Training device")
        for key, text in DEVICES:
            self.device_combo.addItem(text, key)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(self.settings.get("device"))))
        self.init_check = QCheckBox("Start from the shipped model (fine-tune)")
        self.init_check.setChecked(True)
        self.resume_check = QCheckBox("Resume the last run of this profile")
        self.run_label = QLabel()
        self.run_label.setWordWrap(True)
        self.run_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.phase2 = Phase2Form(self.settings, self)
        box = QGroupBox("Job")
        self.form = form = QFormLayout(box)
        form.addRow("Job", self.job_combo)
        for label, field in self.phase2.rows:
            form.addRow(label, field)
        for label, field in (("Images", data_row), ("Steps", self.steps_spin), ("Batch size", self.batch_spin),
                             ("Device", self.device_combo), ("", self.init_check), ("", self.resume_check),
                             ("Run folder", self.run_label)):
            form.addRow(label, field)
        self.job_combo.currentIndexChanged.connect(self._job_changed)
        return box

    def _build_actions(self, column: QVBoxLayout) -> None:
        """Start and cancel, the progress of the running job, then evaluate-and-install and roll back."""
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start_job)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_job)
        self.install_button = QPushButton("Evaluate && install detector")
        self.install_button.setToolTip("Installs the new detector for this profile only if it scores better than "
                                       "the current one on held-out images")
        self.install_button.clicked.connect(self.evaluate_and_install)
        self.rollback_button = QPushButton("Roll back detector")
        self.rollback_button.setToolTip("Restore the profile's previous detector")
        self.rollback_button.clicked.connect(self.roll_back)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Training progress")
        self.progress_label = QLabel("")
        self.metrics_label = QLabel("")
        self.metrics_label.setWordWrap(True)
        column.addLayout(_row(self.start_button, self.cancel_button))
        for widget in (self.progress, self.progress_label, self.metrics_label):
            column.addWidget(widget)
        column.addLayout(_row(self.install_button, self.rollback_button))

    # -- state ---------------------------------------------------------------------------------
    def run_folder(self) -> Path:
        profile = self.context.profile()
        return Path(self.context.store.home) / "runs" / profile.name / self.job_combo.currentData()

    def _job_changed(self) -> None:
        phase2 = self.job_combo.currentData() == "phase2"
        for field in (self.data_row, self.steps_spin, self.batch_spin, self.init_check):
            self.form.setRowVisible(field, not phase2)
        for _, field in self.phase2.rows:
            self.form.setRowVisible(field, phase2)
        self.resume_check.setToolTip(RESUME_TIPS["phase2" if phase2 else "phase1"])
        self._profile_changed()

    def _profile_changed(self) -> None:
        self.run_label.setText(str(self.run_folder()) if self.context.store is not None else "…")
        self._refresh_enabled()

    def _choose_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training images", self.data_edit.text())
        if folder:
            self.data_edit.setText(folder)

    def _refresh_enabled(self) -> None:
        busy = self.runner.busy
        loaded = self.context.store is not None
        self.start_button.setEnabled(not busy and loaded)
        self.cancel_button.setEnabled(busy)
        self.rollback_button.setEnabled(False)
        if not loaded:
            self.install_button.setEnabled(False)
            return
        self.install_button.setEnabled(not busy and self.outcome is not None and self.outcome.model_dir is not None
                                       and self.context.engine is not None)
        self.rollback_button.setEnabled(not busy and self.context.profile().can_roll_back_detector())
        for widget in (self.job_combo, self.data_edit, self.steps_spin, self.batch_spin, self.device_combo,
                       self.init_check, self.resume_check):
            widget.setEnabled(not busy)
        self.phase2.set_enabled(not busy)

    def spec(self) -> JobSpec:
        from gwm_desktop.core.engine import default_model_dir

        if self.job_combo.currentData() == "phase2":  # the app's watermark model (None: the shipped one) and key
            model, profile = self.context.engine_host.model_dir, self.context.profile()
            extra = {**self.phase2.extra(), "key_file": str(profile.folder / "key.bin"), "profile": profile.name}
            return JobSpec(kind="phase2", data=[self.phase2.images_dir()], out=str(self.run_folder()),
                           steps=max((self.phase2.step_spins[m].value() for m in extra["methods"]),
                                     default=self.steps_spin.value()),
                           device=self.device_combo.currentData(), resume=self.resume_check.isChecked(),
                           init_from=str(model) if model else None, extra=extra)
        init = str(default_model_dir()) if self.init_check.isChecked() else None
        if init and not (Path(init) / "manifest.json").exists():
            init = None
        if self.context.engine_host.model_dir is not None and self.init_check.isChecked():
            init = str(self.context.engine_host.model_dir)
        return JobSpec(kind=self.job_combo.currentData(), data=[self.data_edit.text().strip()],
                       out=str(self.run_folder()), steps=self.steps_spin.value(),
                       batch_size=self.batch_spin.value(), device=self.device_combo.currentData(),
                       resume=self.resume_check.isChecked(), init_from=init)

    # -- jobs ----------------------------------------------------------------------------------
    def start_job(self) -> bool:
        if self.runner.busy or self.context.store is None:
            return False
        if self.job_combo.currentData() == "phase2":
            spec = self._phase2_spec()
            if spec is None:
                return False
            details = self.phase2.summary()
        else:
            data = self.data_edit.text().strip()
            if not data or not Path(data).is_dir():
                return self._refuse("Choose a folder of training images first.")
            self.settings.set("advanced_data", data)
            self.settings.set("advanced_steps", self.steps_spin.value())
            self.settings.set("advanced_batch", self.batch_spin.value())
            spec = self.spec()
            details = f"{spec.steps} steps, batch {spec.batch_size}"
        try:
            factory = start(spec)
        except RuntimeError as error:
            return self._refuse(str(error))
        self.outcome = None
        job = JOBS[spec.kind]
        if not spec.resume or self.plot.series != job.curves[:4]:
            self.plot.series = job.curves[:4]
            self.plot.clear()
        self.progress.setRange(0, spec.steps)
        self.progress.setValue(0)
        self.progress_label.setText("Starting…")
        self._eta_origin, self._stepped, self._curves = None, False, job.curves
        self.output_tabs.setCurrentWidget(self.log)
        self._log(f"Starting {job.title}: {details}, device {spec.device}, run folder {spec.out}"
                  + (" (resuming)" if spec.resume else ""))
        worker = self.runner.start(factory, spec.kind)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(self._on_done)
        worker.aborted.connect(self._on_aborted)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._refresh_enabled)
        self.runner.launch()
        self._refresh_enabled()
        return True

    def _phase2_spec(self) -> JobSpec | None:
        """The Phase 2 JobSpec, or None (and a message) when a field is unusable or the user stepped back."""
        problem = self.phase2.problem()
        if problem:
            self._refuse(problem)
            return None
        self.phase2.save()
        spec = self.spec()
        earlier = earlier_outputs(Path(spec.out))
        if earlier and not spec.resume:
            start_over = self.phase2.confirm_start_over(earlier)
            if start_over is None:
                return None
            spec.resume = not start_over
            self.resume_check.setChecked(spec.resume)
        return spec

    def _refuse(self, message: str) -> bool:
        self.progress_label.setText(message)
        self._log(message)
        self.context.say(message)
        return False

    def _on_progress(self, progress: Any) -> None:
        metrics = progress.payload or {}
        if progress.total and self.progress.maximum() != progress.total:
            self.progress.setRange(0, progress.total)
        self.progress.setValue(min(progress.done, progress.total))
        stepping = "step" in metrics
        if self._eta_origin is None or not (stepping or self._stepped):  # time from the first training step on
            self._eta_origin = (time.monotonic(), progress.done)
        self._stepped = self._stepped or stepping
        started, first = self._eta_origin
        eta = format_eta(eta_seconds(progress.done - first, progress.total - first, started)) if self._stepped else ""
        stage = metrics.get("stage")  # jobs of several stages (Phase 2) name the current one
        if stage or stepping:
            where = f"{stage} · {progress.done} of {progress.total}" if stage else \
                f"Step {progress.done} of {progress.total}"
            self.progress_label.setText(where + (f" · {eta}" if eta else ""))
        if not stepping:
            self._log(progress.message)
            return
        self.plot.add(metrics["step"], metrics)
        shown = {k: metrics[k] for k in self._curves if k in metrics}
        self.metrics_label.setText(" · ".join(f"{k} {v:.3f}" for k, v in shown.items()))
        values = ", ".join(f"{k}={v:.4f}" for k, v in shown.items())
        self._log(f"{progress.message} ({values})" if stage else f"step {progress.done}: {values}")

    def _on_done(self, outcome: Any) -> None:
        self.outcome = outcome
        self.progress_label.setText(f"Finished at step {outcome.steps_done}" if not outcome.report
                                    else "Finished: the report is on the right")
        self._log(f"Finished: {outcome.note}")
        if outcome.report:
            self.metrics_label.setText(outcome.note.partition("\n")[2])  # the headline figures
            self.report_view.setMarkdown(outcome.report)
            self.output_tabs.setCurrentWidget(self.report_view)
        self.context.say("Training finished")
        self.job_finished.emit("done")

    def _on_aborted(self) -> None:
        self.progress_label.setText("Cancelled — tick “Resume” to continue from the last checkpoint")
        self._log("Cancelled. The last checkpoint is kept; tick Resume to continue.")
        self.job_finished.emit("cancelled")

    def _on_error(self, message: str, trace: str) -> None:
        self.progress_label.setText(f"Failed: {message}")
        self._log(f"Error: {message}\n{trace}")
        self.job_finished.emit("error")

    def cancel_job(self) -> None:
        if self.runner.busy:
            self.progress_label.setText("Cancelling after this step…")
            self.runner.cancel()

    def evaluate_and_install(self) -> bool:
        engine = self.context.engine
        if self.runner.busy or engine is None or self.outcome is None or self.outcome.model_dir is None:
            return False
        profile, candidate = self.context.profile(), self.outcome.model_dir
        fallback = expand_inputs([Path(self.data_edit.text().strip())])[:16] if self.outcome.heldout is None else []
        message, job = detector.evaluation_job(engine, profile, self.outcome, fallback)
        self._log(message)
        worker = self.runner.start(job, "evaluate")

        def decided(result: Any) -> None:
            decision, lines = detector.install_if_better(engine, profile, candidate, result)
            for line in lines:
                self._log(line)
            self.context.say(decision.reason)

        worker.returned.connect(decided)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._refresh_enabled)
        self.runner.launch()
        self._refresh_enabled()
        return True

    def roll_back(self) -> None:
        try:
            detector.roll_back(self.context.engine, self.context.profile())
        except OSError as error:
            self._log(f"Roll back failed: {error}")
            return
        self._log("Restored the previous detector.")
        self.context.say("Restored the previous detector")
        self._refresh_enabled()

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        return self.runner.shutdown(timeout_s)
