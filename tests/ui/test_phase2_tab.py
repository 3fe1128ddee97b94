"""Advanced tab drives Phase 2: a run completes and shows its report; a cancel leaves nothing installed;
bad input is refused before anything starts; an installed detector rolls back.

The tab drives the fake Phase 2 job (tests/jobs/fake.py), which keeps the real JobSpec mapping and
start-over; tests/jobs/test_real_jobs.py runs the real job on the tiny pipeline. The window's model is
the tiny 32 px watermark model of tests/training/phase2_tiny.py (these tests need no shipped model).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.fake import use_fake_jobs
from tests.training.phase2_tiny import (
    save_tiny_pipeline,
    single_thread_torch,
    tiny_watermark_model,
    write_subject_images,
)

pytestmark = pytest.mark.filterwarnings("ignore")

TINY = {"resolution": 32, "synth_steps": 2, "n_train_prompts": 2, "n_heldout_prompts": 2, "images_per_prompt": 2,
        "heldout_images_per_prompt": 2, "finetune_steps": 4, "finetune_batch_size": 4, "checkpoint_every": 0,
        "method_overrides": {"lora": {"validation_images": 0}}}


@pytest.fixture(autouse=True)
def _one_thread():
    yield from single_thread_torch()


@pytest.fixture(autouse=True)
def _fake_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_jobs(monkeypatch)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("phase2-ui")
    write_subject_images(root / "X", n=3, size=40)
    return {"base": save_tiny_pipeline(root / "base"), "images": root / "X",
            "model": tiny_watermark_model(root / "wm")}


# The conftest's `window` fixture, on this module's tiny 32 px watermark model instead of the session's.
@pytest.fixture(scope="module")
def model_dir(world) -> Path:
    return world["model"]


@pytest.fixture(scope="module")
def engine(model_dir: Path):
    from gwm_desktop.core.engine import Engine

    return Engine(model_dir, "cpu")


def configure(tab, world: dict[str, Path], lora_steps: int = 2) -> None:
    tab.job_combo.setCurrentIndex(tab.job_combo.findData("phase2"))
    form = tab.phase2
    form.base_edit.setText(str(world["base"]))
    form.images_edit.setText(str(world["images"]))
    for key, check in form.method_checks.items():
        check.setChecked(key == "lora")
    form.step_spins["lora"].setValue(lora_steps)
    form.overrides = dict(TINY)
    tab.device_combo.setCurrentIndex(tab.device_combo.findData("cpu"))


def test_phase2_completes_shows_its_report_then_resumes_or_starts_over(window, qtbot, world) -> None:
    tab = window.advanced_tab
    configure(tab, world)
    assert tab.phase2.base_edit.isVisibleTo(tab) and not tab.steps_spin.isVisibleTo(tab)
    assert not tab.data_edit.isVisibleTo(tab) and tab.resume_check.isVisibleTo(tab)
    with qtbot.waitSignal(tab.job_finished, timeout=20_000) as done:
        assert tab.start_job()
    assert done.args == ["done"], tab.log.toPlainText()[-3000:]
    outcome = tab.outcome
    run = Path(tab.spec().out)
    assert outcome.model_dir == run / "detectors" / "lora" and (outcome.model_dir / "manifest.json").exists()
    assert (run / "report.md").exists() and "lora: accuracy" in outcome.note
    assert tab.output_tabs.currentWidget() is tab.report_view
    shown = tab.report_view.toPlainText()
    assert "Phase 2 report" in shown and "Phase 1 detector vs Phase 2 detector" in shown and "lora" in shown
    assert tab.plot.points["personalize_loss"] and tab.plot.points["detector_loss"]
    assert "personalize lora on clean" in tab.log.toPlainText()
    clean, marked = outcome.heldout
    assert len(clean) == len(marked) == 4  # 2 held-out prompts x 2 seeds
    qtbot.waitUntil(tab.install_button.isEnabled, timeout=5000)

    assert tab.evaluate_and_install()
    # The runner is idle once the outcome arrives, a moment before the tab's own handler logs the decision.
    def decided() -> bool:
        return any(word in tab.log.toPlainText() for word in ("Installed.", "Not installed:"))

    qtbot.waitUntil(decided, timeout=20_000)
    qtbot.waitUntil(lambda: not tab.runner.busy, timeout=20_000)
    log = tab.log.toPlainText()
    assert "held-out images" in log and ("Installed." in log or "Not installed:" in log), log[-2000:]
    installed = window.context.profile().detector_folder
    assert (installed is not None) == ("Installed." in log)

    # Resume off with results present: the tab asks; "Resume" reuses every finished stage.
    asked = []
    tab.phase2.confirm_start_over = lambda earlier: asked.append(earlier) or False
    tab.resume_check.setChecked(False)
    tab.log.clear()
    with qtbot.waitSignal(tab.job_finished, timeout=20_000) as again:
        assert tab.start_job()
    assert again.args == ["done"] and asked and tab.resume_check.isChecked()
    assert "personalize lora" not in tab.log.toPlainText() and "fine-tune detector" not in tab.log.toPlainText()

    # "Start over" deletes the earlier results first and redoes every stage.
    stale = run / "synth" / "stale.txt"
    stale.write_text("from an earlier run")
    tab.phase2.confirm_start_over = lambda earlier: True
    tab.resume_check.setChecked(False)
    tab.log.clear()
    with qtbot.waitSignal(tab.job_finished, timeout=20_000) as over:
        assert tab.start_job()
    assert over.args == ["done"] and not stale.exists() and not tab.resume_check.isChecked()
    assert "Starting over" in tab.log.toPlainText() and "personalize lora on marked" in tab.log.toPlainText()


def test_cancelled_phase2_returns_to_idle_and_installs_nothing(window, qtbot, world) -> None:
    tab = window.advanced_tab
    configure(tab, world, lora_steps=5000)
    steps_seen = []

    def cancel_at_first_step(progress) -> None:
        if (progress.payload or {}).get("step"):
            steps_seen.append(progress.message)
            tab.cancel_job()

    with qtbot.waitSignal(tab.job_finished, timeout=20_000) as cancelled:
        assert tab.start_job()
        tab.runner.worker.yielded.connect(cancel_at_first_step)
    assert cancelled.args == ["cancelled"], tab.log.toPlainText()[-3000:]
    assert steps_seen and steps_seen[0].startswith("personalize lora on clean")
    qtbot.waitUntil(lambda: not tab.runner.busy and tab.start_button.isEnabled(), timeout=10_000)
    assert tab.outcome is None and not tab.install_button.isEnabled() and tab.phase2.base_edit.isEnabled()
    assert "Cancelled" in tab.progress_label.text()
    run = Path(tab.spec().out)
    assert not list(run.glob("detectors*/*/manifest.json")) and not (run / "report.md").exists()
    assert not (run / "models" / "lora" / "clean" / "personalization.json").exists()
    assert window.context.profile().detector_folder is None


def test_bad_input_is_refused_before_anything_starts(window, qtbot, world, tmp_path: Path) -> None:
    from training.phase2_methods import DEFAULT_STEPS

    tab = window.advanced_tab
    assert {k: tab.phase2.step_spins[k].value() for k in DEFAULT_STEPS} == DEFAULT_STEPS  # form defaults
    assert not tab.phase2.base_edit.isVisibleTo(tab) and tab.steps_spin.isVisibleTo(tab)  # Phase 1 by default
    configure(tab, world)
    run = Path(tab.spec().out)

    def refused(expected: str) -> None:
        assert not tab.start_job()
        assert not tab.runner.busy and tab.runner.worker is None and not run.exists()
        assert expected in tab.progress_label.text() and expected in tab.log.toPlainText()

    for check in tab.phase2.method_checks.values():
        check.setChecked(False)
    refused("Tick at least one personalisation method")
    tab.phase2.method_checks["textual_inversion"].setChecked(True)
    tab.phase2.images_edit.setText(str(tmp_path / "missing"))
    refused("does not exist")
    (tmp_path / "empty").mkdir()
    tab.phase2.images_edit.setText(str(tmp_path / "empty"))
    refused("There are no images")
    tab.phase2.images_edit.setText(str(world["images"]))
    tab.phase2.base_edit.setText("")
    refused("Choose a base model")
    tab.phase2.base_edit.setText(str(tmp_path))  # a folder, but not a diffusers model
    refused("not a diffusers model folder")

    tab.phase2.base_edit.setText("org/some-model")  # a hub id is accepted as such
    spec = tab.spec()
    assert spec.extra["methods"] == ("textual_inversion",) and spec.extra["base"] == "org/some-model"
    assert spec.extra["method_overrides"]["textual_inversion"]["train_steps"] == 2000
    assert spec.extra["key_file"].endswith("key.bin") and spec.init_from == str(world["model"])

    from gwm_desktop.jobs.phase2 import config_from_spec

    config = config_from_spec(spec)
    assert config.personalize_config("textual_inversion").resolved_steps() == 2000
    assert config.images_dir == str(world["images"]) and config.device == "cpu" and config.prompts == "art"
    assert config.resolution == 32 and config.model_dir == str(world["model"])
    tab.phase2.prompts_combo.setCurrentIndex(tab.phase2.prompts_combo.findData("face"))
    face = config_from_spec(tab.spec())
    assert face.prompts == "face" and face.instance_prompt == "a photo of <sks> person"


def test_lora_layers_choice_reaches_the_personalization(window, world) -> None:
    from gwm_desktop.jobs.phase2 import config_from_spec
    from gwm_desktop.ui.phase2_form import LORA_TARGETS
    from training.phase2_methods import LORA_TARGET_SETS

    assert [key for key, *_ in LORA_TARGETS] == list(LORA_TARGET_SETS)
    tab = window.advanced_tab
    configure(tab, world)
    form = tab.phase2
    assert form.lora_targets.currentData() == "attention" and form.lora_targets.isEnabled()
    form.lora_targets.setCurrentIndex(form.lora_targets.findData("transformer_conv"))
    assert config_from_spec(tab.spec()).personalize_config("lora").lora_targets == "transformer_conv"
    assert "convolutions" in form.summary()
    form.method_checks["lora"].setChecked(False)
    assert not form.lora_targets.isEnabled()


def test_watermark_level_and_share_reach_the_phase2_config(window, world, settings) -> None:
    from gwm_desktop.jobs.phase2 import config_from_spec

    tab = window.advanced_tab
    configure(tab, world)
    form = tab.phase2
    config = config_from_spec(tab.spec())
    assert (config.p, config.watermark_fraction, config.tag) == (0.05, 1.0, "")  # the app's default level, all
    form.level_combo.setCurrentIndex(form.level_combo.findData("invisible"))
    form.share_combo.setCurrentIndex(form.share_combo.findData("quarter"))
    config = config_from_spec(tab.spec())
    assert (config.p, config.watermark_fraction, config.tag) == (0.01, 0.25, "_wf0.25_p0.01")
    assert "invisible (lpips 0.01) on 1 in 4 (partial) images" in form.summary()
    form.save()
    assert (settings.get("phase2_level"), settings.get("phase2_share")) == ("invisible", "quarter")


def test_an_installed_detector_rolls_back_from_the_tab(window, qtbot, world, tmp_path: Path) -> None:
    from gwm_desktop.core.profiles import Evaluation

    tab = window.advanced_tab
    profile = window.context.profile()
    assert not tab.rollback_button.isEnabled()
    for value in (0.6, 0.7):  # two installs: the second keeps the first for a roll back
        assert profile.install_detector_if_better(world["model"], Evaluation("acc", value), None).installed
    (profile.detector_path / "which.txt").write_text("second")
    tab._refresh_enabled()
    assert tab.rollback_button.isEnabled()
    tab.rollback_button.click()
    assert "Restored the previous detector." in tab.log.toPlainText()
    assert not (profile.detector_path / "which.txt").exists()
    assert (profile.folder / "detector.previous" / "which.txt").read_text() == "second"
