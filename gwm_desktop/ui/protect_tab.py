"""Protect tab: drop artwork, choose how invisible, compare before/after, export watermarked copies."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from PIL import Image
from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gwm_desktop.core.flat_colour import FLAT_COLOUR_NOTE, is_flat_colour
from gwm_desktop.core.image_io import IMAGE_EXTENSIONS, EncodeOptions
from gwm_desktop.core.jobs import CancelToken, eta_seconds
from gwm_desktop.core.levels import DEFAULT_LEVEL, LEVELS, Level
from gwm_desktop.ui.context import AppContext, expand_inputs, format_eta
from gwm_desktop.ui.drop_helpers import install_drop
from gwm_desktop.ui.models import PATH_ROLE, ProtectListModel, ThumbnailCache
from gwm_desktop.ui.protect_boxes import DropListView, ExportBox, LevelBox, OutputBox, PreviewPane
from gwm_desktop.ui.qimage import pil_to_qimage
from gwm_desktop.ui.workers import JobRunner

IMAGE_FILTER = "Images (" + " ".join(f"*{ext}" for ext in sorted(IMAGE_EXTENSIONS)) + ");;All files (*)"


def preview_job(engine: Any, profile: Any, path: Path, p: float,
                options: EncodeOptions) -> Callable[[CancelToken], Generator[str, None, dict | None]]:
    """Watermark one image in memory (nothing written) for the before/after view."""
    from gwm_desktop.core.image_encode import to_uint8
    from gwm_desktop.core.image_io import decode_bytes, load_image, to_rgb8

    def job(cancel: CancelToken) -> Generator[str, None, dict | None]:
        loaded = load_image(path)
        # Transparency kept (the export keeps it): the view shows it as a checkerboard, not as the
        # colour stored under it.
        alpha = None if loaded.alpha is None else Image.fromarray(to_uint8(loaded.alpha))
        before = to_rgb8(loaded.rgb)
        if alpha is not None:
            before.putalpha(alpha)
        yield "loaded"
        if cancel.cancelled:
            return None
        result = engine.embedder(profile).protect(loaded, p, options)
        after = to_rgb8(decode_bytes(result.data))
        if alpha is not None:
            after.putalpha(alpha)
        return {"path": path, "p": p, "before": pil_to_qimage(before), "after": pil_to_qimage(after),
                "lpips": result.lpips, "psnr": result.psnr, "flat_colour": is_flat_colour(loaded.rgb, loaded.alpha)}

    return job


class ProtectTab(QWidget):
    export_finished = Signal(object)  # list of ProtectItem

    def __init__(self, context: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.settings = context.settings
        self.thumbnails = ThumbnailCache(side=56, capacity=600, parent=self)
        self.model = ProtectListModel(self.thumbnails, self)
        self.export_runner = JobRunner(self)
        self.preview_runner = JobRunner(self)
        self._pending_preview: tuple[Path, float] | None = None
        self.results: list[Any] = []
        self._export_started = 0.0
        self._build()
        self._restore()
        context.engine_host.ready.connect(lambda _e: self._refresh_enabled())
        context.signals.profile_changed.connect(lambda _p: self.request_preview())
        self._refresh_enabled()

    # -- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        """The file list beside the preview, above the three option boxes; each box is a named class
        (``protect_boxes``), wired here to what it does."""
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_file_list())
        self.preview_pane = PreviewPane()
        self.compare, self.metrics_label = self.preview_pane.compare, self.preview_pane.metrics_label
        splitter.addWidget(self.preview_pane)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([340, 900])
        self.splitter = splitter

        self.level_box = LevelBox()
        self.level_slider, self.level_label = self.level_box.slider, self.level_box.label
        self.level_slider.valueChanged.connect(self._level_changed)

        self.output_box = OutputBox()
        box = self.output_box
        self.output_edit, self.format_combo = box.folder_edit, box.format_combo
        self.quality_spin, self.metadata_check = box.quality_spin, box.metadata_check
        box.browse_button.clicked.connect(self.choose_output)
        self.format_combo.currentIndexChanged.connect(self._format_changed)

        self.export_box = ExportBox()
        box = self.export_box
        self.export_button, self.cancel_button, self.progress = box.export_button, box.cancel_button, box.progress
        self.progress_label, self.summary_label = box.progress_label, box.summary_label
        self.open_output_button = box.open_output_button
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.cancel_export)
        self.open_output_button.clicked.connect(self.open_output)

        options = QHBoxLayout()
        options.addWidget(self.level_box, 3)
        options.addWidget(self.output_box, 4)
        options.addWidget(self.export_box, 3)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(options)

        QShortcut(QKeySequence.StandardKey.Open, self, self.choose_files)
        QShortcut(QKeySequence("Ctrl+E"), self, self.start_export)
        QShortcut(QKeySequence.StandardKey.Delete, self.list_view, self.remove_selected)

    def _build_file_list(self) -> QWidget:
        """The images to protect (drop target) under the add, remove and clear buttons."""
        self.list_view = DropListView("Drop artwork here\n(files or folders)\n\nor use Add images… (Ctrl+O)")
        self.list_view.setModel(self.model)
        self.list_view.setIconSize(QSize(56, 56))
        self.list_view.setSpacing(2)
        self.list_view.setUniformItemSizes(True)
        self.list_view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list_view.setAccessibleName("Images to protect")
        self.list_view.selectionModel().currentChanged.connect(lambda *_: self.request_preview())
        install_drop(self.list_view, self.add_paths)
        install_drop(self, self.add_paths)

        self.add_files_button = QPushButton("Add images…")
        self.add_files_button.setToolTip("Add image files (Ctrl+O)")
        self.add_files_button.clicked.connect(self.choose_files)
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.clicked.connect(self.choose_folder)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected images from the list (Delete); the files stay on disk")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        buttons = QHBoxLayout()
        for b in (self.add_files_button, self.add_folder_button, self.remove_button, self.clear_button):
            buttons.addWidget(b)
        pane = QWidget()
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.list_view)
        return pane

    def _restore(self) -> None:
        names = [level.name for level in LEVELS]
        level = self.settings.get("level")
        self.level_slider.setValue(names.index(level) if level in names else names.index(DEFAULT_LEVEL))
        self._level_changed(self.level_slider.value())
        self.output_edit.setText(self.settings.get("output_dir"))
        fmt = self.settings.get("format")
        self.format_combo.setCurrentIndex(max(0, self.format_combo.findData(fmt)))
        self.quality_spin.setValue(self.settings.get("jpeg_quality"))
        self.metadata_check.setChecked(self.settings.get("keep_metadata"))
        self._format_changed()

    def save_settings(self) -> None:
        self.settings.set("level", self.level().name)
        self.settings.set("output_dir", self.output_edit.text().strip())
        self.settings.set("format", self.format_combo.currentData())
        self.settings.set("jpeg_quality", self.quality_spin.value())
        self.settings.set("keep_metadata", self.metadata_check.isChecked())

    # -- inputs --------------------------------------------------------------------------------
    def add_paths(self, paths: list[Path]) -> int:
        files = expand_inputs([Path(p) for p in paths])
        added = self.model.add_paths(files)
        if added and not self.list_view.currentIndex().isValid():
            self.list_view.setCurrentIndex(self.model.index(0))
        self.context.say(f"Added {added} image{'s' if added != 1 else ''}" if added else "No new images to add")
        self._refresh_enabled()
        return added

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add images to protect", self.settings.get("last_folder"),
                                                IMAGE_FILTER)
        if files:
            self.settings.set("last_folder", str(Path(files[0]).parent))
            self.add_paths([Path(f) for f in files])

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images", self.settings.get("last_folder"))
        if folder:
            self.settings.set("last_folder", folder)
            self.add_paths([Path(folder)])

    def choose_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save protected copies to", self.output_edit.text())
        if folder:
            self.output_edit.setText(folder)

    def remove_selected(self) -> None:
        if self.export_runner.busy:
            return
        self.model.remove_rows([i.row() for i in self.list_view.selectionModel().selectedIndexes()])
        self._refresh_enabled()

    def clear(self) -> None:
        if self.export_runner.busy:
            return
        self.model.clear()
        self.compare.clear()
        self.metrics_label.clear()
        self._refresh_enabled()

    # -- options -------------------------------------------------------------------------------
    def level(self) -> Level:
        return LEVELS[self.level_slider.value()]

    def _level_changed(self, value: int) -> None:
        level = LEVELS[value]
        pretty = level.title
        self.level_label.setText(f"<b>{pretty}</b> — {level.description}")
        tip = f"{pretty}: perceptual difference (LPIPS) at most p = {level.p:g}"
        self.level_slider.setToolTip(tip)
        self.level_slider.setAccessibleDescription(tip)
        self.request_preview()

    def _format_changed(self, *_: Any) -> None:
        self.quality_spin.setEnabled(self.format_combo.currentData() in ("jpeg", "webp", "same"))
        self.request_preview()

    def encode_options(self) -> EncodeOptions:
        quality = self.quality_spin.value()
        return EncodeOptions(format=self.format_combo.currentData(), jpeg_quality=quality, webp_quality=quality,
                             keep_metadata=self.metadata_check.isChecked())

    def output_dir(self) -> Path | None:
        text = self.output_edit.text().strip()
        if text:
            return Path(text).expanduser()
        paths = self.model.paths()
        return paths[0].parent / "protected" if paths else None

    # -- preview -------------------------------------------------------------------------------
    def request_preview(self) -> None:
        index = self.list_view.currentIndex() if hasattr(self, "list_view") else None
        engine = self.context.engine
        if index is None or not index.isValid():
            return
        path = Path(self.model.data(index, PATH_ROLE))
        if engine is None:
            self.compare.set_placeholder("Loading model… the preview appears when it is ready")
            return
        self._pending_preview = (path, self.level().p)
        if self.preview_runner.busy:
            self.preview_runner.cancel()  # the newest request starts when this one ends
            return
        self._start_preview()

    def _start_preview(self) -> None:
        if self._pending_preview is None or self.context.engine is None:
            return
        path, p = self._pending_preview
        self._pending_preview = None
        self.metrics_label.setText(f"Computing preview of {path.name}…")
        job = preview_job(self.context.engine, self.context.profile(), path, p, self.encode_options())
        worker = self.preview_runner.start(job, "preview")
        worker.returned.connect(self._preview_ready)
        worker.errored.connect(lambda message, _t, name=path.name: self._preview_failed(name, message))
        worker.finished.connect(self._start_preview)
        self.preview_runner.launch()

    def _preview_ready(self, result: dict | None) -> None:
        if not result or self._pending_preview is not None:
            return
        self.compare.set_images(result["before"], result["after"])
        self.metrics_label.setText(
            f"<b>{result['path'].name}</b>: LPIPS {result['lpips']:.4f} (limit {result['p']:g}) · "
            f"PSNR {result['psnr']:.1f} dB · {result['before'].width()}×{result['before'].height()} px"
            + (f"<br><i>{FLAT_COLOUR_NOTE.capitalize()}.</i>" if result["flat_colour"] else ""))

    def _preview_failed(self, name: str, message: str) -> None:
        self.compare.clear(f"Cannot preview {name}:\n{message}")
        self.metrics_label.setText(f"{name}: {message}")

    # -- export --------------------------------------------------------------------------------
    def _refresh_enabled(self) -> None:
        busy = self.export_runner.busy
        ready = self.context.engine is not None
        self.export_button.setEnabled(ready and not busy and self.model.rowCount() > 0)
        self.export_button.setText("Export protected copies" if ready else "Loading model…")
        self.cancel_button.setEnabled(busy)
        for widget in (self.add_files_button, self.add_folder_button, self.remove_button, self.clear_button,
                       self.level_slider, self.format_combo, self.output_edit, self.metadata_check):
            widget.setEnabled(not busy)

    def start_export(self) -> bool:
        engine = self.context.engine
        paths = self.model.paths()
        if engine is None or not paths or self.export_runner.busy:
            return False
        out_dir = self.output_dir()
        if any(p.parent.resolve() == out_dir.resolve() for p in paths if p.exists()):
            QMessageBox.warning(self, "Choose another folder",
                                "The output folder holds some of the originals. Choose a different folder, so "
                                "the protected copies never replace or mix with your originals.")
            return False
        self.save_settings()
        self.results = []
        self.model.set_all("ready")
        self.summary_label.clear()
        self.open_output_button.setVisible(False)
        self.progress.setRange(0, len(paths))
        self.progress.setValue(0)
        self._export_started = time.monotonic()
        self._export_dir = out_dir
        profile, p, options = self.context.profile(), self.level().p, self.encode_options()
        self.model.update(paths[0], status="working")
        worker = self.export_runner.start(
            lambda cancel: engine.protect_files(paths, out_dir, profile, p, options, cancel), "export")
        worker.yielded.connect(self._export_progress)
        worker.errored.connect(lambda message, _t: self._export_done(f"Export stopped: {message}"))
        worker.aborted.connect(lambda: self._export_done("Export cancelled."))
        worker.returned.connect(lambda _r: self._export_done(None))
        self.progress_label.setText(f"Protecting 0 of {len(paths)}…")
        self.export_runner.launch()
        self._refresh_enabled()
        return True

    def _export_progress(self, progress: Any) -> None:
        item = progress.payload
        self.results.append(item)
        if item.ok:
            self.model.update(item.source, status="done", output=item.output, lpips=item.lpips, psnr=item.psnr,
                              detail="", flat_colour=item.flat_colour)
        else:
            self.model.update(item.source, status="failed", detail=item.error)
        for entry in self.model.entries:  # the next file in the queue is the one now in work
            if entry.status == "ready":
                self.model.update(entry.path, status="working")
                break
        self.progress.setValue(progress.done)
        eta = format_eta(eta_seconds(progress.done, progress.total, self._export_started))
        self.progress_label.setText(f"Protected {progress.done} of {progress.total}" + (f" · {eta}" if eta else ""))

    def _export_done(self, stopped: str | None) -> None:
        for entry in self.model.entries:
            if entry.status in ("working", "ready"):
                self.model.update(entry.path, status="cancelled" if stopped else "ready")
        ok = [r for r in self.results if r.ok]
        failed = [r for r in self.results if not r.ok]
        lines = [stopped] if stopped else []
        lines.append(f"Exported {len(ok)} of {self.model.rowCount()} to {self._export_dir}.")
        flat = [r for r in ok if r.flat_colour]
        if flat:
            lines.append(f"{len(flat)} with large areas of flat colour: the watermark can show there at any level; "
                         "compare before sharing.")
        if failed:
            lines.append(f"{len(failed)} could not be protected:")
            lines += [f"• {r.source.name}: {r.error}" for r in failed[:8]]
            if len(failed) > 8:
                lines.append(f"… and {len(failed) - 8} more (hover a red item for its reason)")
        self.summary_label.setText("\n".join(lines))
        self.progress_label.setText("Cancelled" if stopped else "Done")
        self.open_output_button.setVisible(bool(ok))
        self.context.say(lines[0] if stopped else lines[0] + (f" {len(failed)} failed." if failed else ""))
        self._refresh_enabled()
        self.export_finished.emit(list(self.results))

    def cancel_export(self) -> None:
        if self.export_runner.busy:
            self.progress_label.setText("Cancelling after the current image…")
            self.export_runner.cancel()

    def open_output(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._export_dir)))

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        self.save_settings()
        ok = self.export_runner.shutdown(timeout_s) and self.preview_runner.shutdown(timeout_s)
        self.thumbnails.close()
        return ok
