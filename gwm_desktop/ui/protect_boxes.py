"""The Protect tab's named boxes: the file list, the before/after preview, and the three option boxes.

Each box only builds and lays out its widgets; the tab (``protect_tab.ProtectTab``) wires them to
what they do, so the tab reads as behaviour and these read as layout.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gwm_desktop.core.levels import LEVELS
from gwm_desktop.ui.compare_view import CompareView

FORMATS = (("same", "Same as original"), ("png", "PNG (lossless)"), ("jpeg", "JPEG"), ("webp", "WebP"))
COMPARE_MODES = (("split", "Split", "Drag the line to compare"),
                 ("flicker", "Flicker", "Alternate before and after"),
                 ("before", "Before", "The original"), ("after", "After", "The protected copy"),
                 ("difference", "Difference", "What changed, amplified 10x"))


class DropListView(QListView):
    """The file list; says what to do when it is empty."""

    def __init__(self, hint: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint = hint

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self.model() is not None and self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.viewport().rect().adjusted(16, 16, -16, -16),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.hint)


class PreviewPane(QWidget):
    """Before/after view with its compare modes and zoom buttons, and the preview's measured figures."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.compare = CompareView()
        self.compare.clear("Add artwork, then select an image to compare it before and after protection")
        modes = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        for mode, text, tip in COMPARE_MODES:
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.setAccessibleName(f"Compare mode {text}")
            button.setChecked(mode == "split")
            button.clicked.connect(lambda _=False, m=mode: self.compare.set_mode(m))
            self.mode_group.addButton(button)
            modes.addWidget(button)
        modes.addStretch(1)
        for text, tip, zoom in (("Fit", "Fit to view (0)", None), ("100 %", "Actual pixels (1)", 1.0)):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, z=zoom: self.compare.set_zoom(z))
            modes.addWidget(button)
        self.metrics_label = QLabel("")
        self.metrics_label.setAccessibleName("Measured invisibility of the preview")
        self.metrics_label.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(modes)
        layout.addWidget(self.compare, 1)
        layout.addWidget(self.metrics_label)


class LevelBox(QGroupBox):
    """"Invisibility": the level slider between its two ends, and what the chosen level means."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Invisibility", parent)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, len(LEVELS) - 1)
        self.slider.setPageStep(1)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setAccessibleName("Invisibility level")
        self.label = QLabel()
        self.label.setWordWrap(True)
        ends = QHBoxLayout()
        ends.addWidget(QLabel("Less visible"))
        ends.addStretch(1)
        ends.addWidget(QLabel("More robust"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.slider)
        layout.addLayout(ends)
        layout.addWidget(self.label)


class OutputBox(QGroupBox):
    """"Output": the folder, the file format and its quality, and whether metadata is kept."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Output", parent)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("A “protected” folder next to the first image")
        self.folder_edit.setAccessibleName("Output folder")
        self.browse_button = QPushButton("Browse…")
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.browse_button)
        self.format_combo = QComboBox()
        self.format_combo.setAccessibleName("Output format")
        for key, text in FORMATS:
            self.format_combo.addItem(text, key)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(50, 100)
        self.quality_spin.setSuffix(" quality")
        self.quality_spin.setAccessibleName("JPEG and WebP quality")
        self.metadata_check = QCheckBox("Keep colour profile and EXIF")
        self.metadata_check.setToolTip("Uncheck to strip ICC profile and EXIF (camera, location) from the copies")
        format_row = QHBoxLayout()
        format_row.addWidget(self.format_combo, 1)
        format_row.addWidget(self.quality_spin)
        form = QFormLayout(self)
        form.addRow("Folder", folder_row)
        form.addRow("Format", format_row)
        form.addRow("", self.metadata_check)


class ExportBox(QGroupBox):
    """"Export": start and cancel, the progress, and the summary of the last export."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Export", parent)
        self.export_button = QPushButton("Export protected copies")
        self.export_button.setDefault(True)
        self.export_button.setToolTip("Write watermarked copies; originals are never changed (Ctrl+E)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Export progress")
        self.progress.setTextVisible(True)
        self.progress_label = QLabel("")
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_output_button = QPushButton("Open output folder")
        self.open_output_button.setVisible(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button, 1)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.open_output_button)
