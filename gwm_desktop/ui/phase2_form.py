"""The Advanced tab's Phase 2 fields: base model, subject images, methods with their steps, prompt set,
the invisibility level of the watermarked copies and how many of them are watermarked.

``rows`` are (label, field widget) pairs the tab puts in its own form (so labels line up) and shows
only while Phase 2 is chosen. ``problem()`` names what is missing before a run starts; ``extra()``
gives the ``JobSpec.extra`` of ``gwm_desktop.jobs.phase2``. Nothing here imports torch or diffusers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from gwm_desktop.core.levels import LEVELS, level_by_name
from gwm_desktop.jobs.phase2 import base_model_problem
from gwm_desktop.ui.settings import Settings
from training.phase2_methods import DEFAULT_LEARNING_RATE, DEFAULT_STEPS


def _rate(method: str) -> str:
    """The method's default learning rate as the tool tips write it (5e-6, not 5e-06)."""
    return f"{DEFAULT_LEARNING_RATE[method]:.0e}".replace("e-0", "e-")


# (key, label, tool tip); the default steps and learning rates are training.phase2_methods'.
METHODS = (
    ("dreambooth", "DreamBooth", f"Fine-tunes the whole UNet (learning rate {_rate('dreambooth')}). The strongest "
                                 "imitation; needs a GPU with about 16 GB or more, and 3.4 GB of disk per model."),
    ("lora", "LoRA", f"Small rank-4 adapters on the UNet's attention (learning rate {_rate('lora')}). The usual "
                     "choice: fits an 8 GB GPU, a few MB per model."),
    ("textual_inversion", "Textual Inversion", "Learns only one new word's embedding (learning rate "
                                               f"{_rate('textual_inversion')}). Cheapest per step but needs the most steps."),
)
# (key, label, tool tip) for LoRA's layers; keys are training.phase2_methods.LORA_TARGET_SETS' (a test checks).
LORA_TARGETS = (
    ("attention", "attention layers", "Adapters on the attention projections only, as diffusers' training script."),
    ("transformer", "+ feed-forward", "Every linear layer of the transformer blocks, as kohya-ss sd-scripts."),
    ("transformer_conv", "+ convolutions (LoCon)",
     "Also the ResNet convolutions. In our small-scale tests only these LoRAs learned the watermark."),
)
PROMPT_SETS = (("art", "Art styles (paintings)", "Prompts that put the subject's style on paintings of "
                                                 "various scenes: for artists"),
               ("face", "Faces (portraits)", "Portrait prompts: for photographs of a person"))
# (key, label, tool tip, Phase2Config.watermark_fraction)
SHARES = (("all", "all of them", "Every image of the subject is watermarked", 1.0),
          ("quarter", "1 in 4 (partial)", "Only a quarter of the images are watermarked, the rest used clean, "
                                          "as when an artist protected only part of a portfolio", 0.25))
FACE_SUBJECT = {"instance_prompt": "a photo of <sks> person", "initializer_token": "person"}


def _choice_combo(name: str, choices: tuple[tuple[str, str, str], ...], current: str, tip: str) -> QComboBox:
    """A combo box of (key, label, tool tip) choices, ``current`` selected (the first if unknown)."""
    combo = QComboBox()
    combo.setAccessibleName(name)
    for key, label, item_tip in choices:
        combo.addItem(label, key)
        combo.setItemData(combo.count() - 1, item_tip, Qt.ItemDataRole.ToolTipRole)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    combo.setToolTip(tip)
    return combo


class Phase2Form:
    def __init__(self, settings: Settings, parent: QWidget) -> None:
        self.settings = settings
        self.parent = parent
        self.overrides: dict[str, Any] = {}  # any other Phase2Config field, set from Python (tests, scripts)

        self.base_edit = QLineEdit(settings.get("phase2_base"))
        self.base_edit.setPlaceholderText("Hugging Face id, diffusers folder or .safetensors")
        self.base_edit.setAccessibleName("Base model")
        self.base_edit.setToolTip("The text-to-image model a forger would personalise: a Hugging Face id such as "
                                  "stable-diffusion-v1-5/stable-diffusion-v1-5 (downloaded once, several GB), a "
                                  "local diffusers folder, or one .safetensors checkpoint file.")
        base_browse = QPushButton("Browse…")
        base_browse.setToolTip("Choose a local diffusers folder or a single-file checkpoint")
        menu = QMenu(base_browse)
        menu.addAction("Diffusers model folder…", self._choose_base_folder)
        menu.addAction("Single-file checkpoint (.safetensors)…", self._choose_base_file)
        base_browse.setMenu(menu)

        self.images_edit = QLineEdit(settings.get("phase2_images"))
        self.images_edit.setPlaceholderText("A folder of your own artwork (10-30 images)")
        self.images_edit.setAccessibleName("Subject images folder")
        self.images_edit.setToolTip("The images to protect (X). They are watermarked with this profile's key, "
                                    "and the base model is personalised on the clean and on the watermarked set.")
        images_browse = QPushButton("Browse…")
        images_browse.clicked.connect(self._choose_images)
        width = max(base_browse.sizeHint().width(), images_browse.sizeHint().width())
        for button in (base_browse, images_browse):
            button.setMinimumWidth(width)

        chosen = set(settings.get("phase2_methods").split(","))
        methods = QWidget()
        grid = QGridLayout(methods)
        grid.setContentsMargins(0, 0, 0, 0)
        self.method_checks: dict[str, QCheckBox] = {}
        self.step_spins: dict[str, QSpinBox] = {}
        lora_row = [key for key, *_ in METHODS].index("lora")
        for index, (key, label, tip) in enumerate(METHODS):
            row = index + (index > lora_row)  # the LoRA layers row sits right under LoRA
            check = QCheckBox(label)
            check.setChecked(key in chosen)
            check.setToolTip(tip)
            spin = QSpinBox()
            spin.setRange(1, 100_000)
            spin.setSingleStep(50)
            spin.setValue(settings.get(f"phase2_steps_{key}") or DEFAULT_STEPS[key])
            spin.setSuffix(" steps")
            spin.setAccessibleName(f"{label} training steps")
            spin.setToolTip(f"Optimizer steps for each {label} model (two are trained: on the clean and on the "
                            f"watermarked images). Default {DEFAULT_STEPS[key]}.")
            spin.setEnabled(check.isChecked())
            check.toggled.connect(spin.setEnabled)
            grid.addWidget(check, row, 0)
            grid.addWidget(spin, row, 1)
            self.method_checks[key], self.step_spins[key] = check, spin
        grid.setColumnStretch(0, 1)
        self.lora_targets = _choice_combo("LoRA layers", LORA_TARGETS, settings.get("phase2_lora_targets"),
                                          "Which UNet layers the LoRA adapters train")
        self.lora_targets.setEnabled(self.method_checks["lora"].isChecked())
        self.method_checks["lora"].toggled.connect(self.lora_targets.setEnabled)
        layers_label = QLabel("LoRA layers")
        layers_label.setIndent(24)  # under the method check boxes: it belongs to the LoRA row above
        layers_label.setBuddy(self.lora_targets)
        layers_label.setEnabled(self.lora_targets.isEnabled())
        self.method_checks["lora"].toggled.connect(layers_label.setEnabled)
        grid.addWidget(layers_label, lora_row + 1, 0)
        grid.addWidget(self.lora_targets, lora_row + 1, 1)

        self.prompts_combo = _choice_combo("Prompt set", PROMPT_SETS, settings.get("phase2_prompts"),
                                           "The prompts the personalised models draw from: 12 for the detector's "
                                           "training images, 4 to choose its step and threshold, 8 others only "
                                           "for the held-out report")
        levels = tuple((level.name, f"{level.title} (LPIPS {level.p:g})", level.description) for level in LEVELS)
        self.level_combo = _choice_combo("Invisibility of the watermarked copies", levels,
                                         settings.get("phase2_level"),
                                         "The level the watermarked copies of your images are made at, as on "
                                         "the Protect tab")
        self.share_combo = _choice_combo("Images watermarked", tuple(share[:3] for share in SHARES),
                                         settings.get("phase2_share"), "How many of your images are watermarked")
        watermark = QWidget()
        line = QHBoxLayout(watermark)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.level_combo, 1)
        line.addWidget(QLabel("on"))
        line.addWidget(self.share_combo, 1)

        self.rows: list[tuple[str, QWidget]] = [
            ("Base model", _row(self.base_edit, base_browse)),
            ("Your images", _row(self.images_edit, images_browse)),
            ("Methods", methods),
            ("Prompts", self.prompts_combo),
            ("Watermark", watermark),
        ]

    # -- reading -------------------------------------------------------------------------------------
    def methods(self) -> tuple[str, ...]:
        return tuple(key for key, check in self.method_checks.items() if check.isChecked())

    def images_dir(self) -> str:
        return self.images_edit.text().strip()

    def problem(self) -> str | None:
        """What keeps a run from starting, in words; None when the fields are usable."""
        from gwm_desktop.ui.context import expand_inputs

        problem = base_model_problem(self.base_edit.text().strip())
        if problem:
            return problem
        images = self.images_dir()
        if not images:
            return "Choose the folder of your own images (the subject to protect)."
        if not Path(images).is_dir():
            return f"The images folder {images} does not exist."
        if not expand_inputs([Path(images)]):
            return f"There are no images in {images}."
        if not self.methods():
            return "Tick at least one personalisation method (DreamBooth, LoRA or Textual Inversion)."
        return None

    def extra(self) -> dict[str, Any]:
        overrides: dict[str, dict[str, Any]] = {m: {"train_steps": self.step_spins[m].value()} for m in self.methods()}
        if "lora" in overrides:
            overrides["lora"]["lora_targets"] = self.lora_targets.currentData()
        for method, values in self.overrides.get("method_overrides", {}).items():
            overrides.setdefault(method, {}).update(values)
        prompts = self.prompts_combo.currentData()
        subject = FACE_SUBJECT if prompts == "face" else {}  # the images are photos of a person, not paintings
        return {"base": self.base_edit.text().strip(), "methods": self.methods(), "prompts": prompts, **subject,
                "p": level_by_name(self.level_combo.currentData()).p, "watermark_fraction": self.fraction(),
                **self.overrides, "method_overrides": overrides}

    def fraction(self) -> float:
        return next(share[3] for share in SHARES if share[0] == self.share_combo.currentData())

    def summary(self) -> str:
        steps = ", ".join(f"{self.method_checks[m].text()} {self.step_spins[m].value()} steps"
                          + (f" ({self.lora_targets.currentText()})" if m == "lora" else "") for m in self.methods())
        return (f"{steps}, {self.prompts_combo.currentText().lower()} prompts, watermark "
                f"{self.level_combo.currentText().lower()} on {self.share_combo.currentText()} images, "
                f"base {self.base_edit.text().strip()}")

    def save(self) -> None:
        self.settings.set("phase2_base", self.base_edit.text().strip())
        self.settings.set("phase2_images", self.images_dir())
        self.settings.set("phase2_methods", ",".join(self.methods()))
        self.settings.set("phase2_prompts", self.prompts_combo.currentData())
        self.settings.set("phase2_lora_targets", self.lora_targets.currentData())
        self.settings.set("phase2_level", self.level_combo.currentData())
        self.settings.set("phase2_share", self.share_combo.currentData())
        for key, spin in self.step_spins.items():
            self.settings.set(f"phase2_steps_{key}", spin.value())

    def set_enabled(self, enabled: bool) -> None:
        for _, field in self.rows:
            field.setEnabled(enabled)

    def confirm_start_over(self, earlier: list[Path]) -> bool | None:
        """Earlier results exist and Resume is off: True: delete them; False: resume instead; None: cancel."""
        box = QMessageBox(QMessageBox.Icon.Question, "Start Phase 2 over?",
                          f"The last Phase 2 run of this profile left results in {earlier[0].parent} "
                          "(personalised models, synthesized images, detectors). Start over and delete them, "
                          "or resume and reuse what is finished?", QMessageBox.StandardButton.Cancel, self.parent)
        over = box.addButton("Start over", QMessageBox.ButtonRole.DestructiveRole)
        resume = box.addButton("Resume", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(resume)
        box.exec()
        clicked = box.clickedButton()
        if clicked is over:
            return True
        return False if clicked is resume else None

    # -- dialogs -------------------------------------------------------------------------------------
    def _choose_base_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent, "Base model (diffusers folder)", self.base_edit.text())
        if folder:
            self.base_edit.setText(folder)

    def _choose_base_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Base model (single file)", self.base_edit.text(),
                                              "Checkpoints (*.safetensors *.ckpt)")
        if path:
            self.base_edit.setText(path)

    def _choose_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent, "Your images", self.images_dir())
        if folder:
            self.images_edit.setText(folder)


def _row(edit: QLineEdit, button: QPushButton) -> QWidget:
    widget = QWidget()
    layout = QHBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return widget
