"""A profile installs a new detector only when it scored better, keeps the one it replaced, and rolls back."""

from __future__ import annotations

from pathlib import Path

import pytest

from gwm_desktop.core.profiles import Evaluation, ProfileStore
from gwm_desktop.jobs import detector


def _model(folder: Path, tag: str) -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(tag)
    (folder / "phase2_settings.json").write_text("{}")  # a Phase 2 run's cache stamp, not part of the model
    return folder


def test_detector_installs_only_when_better_and_rolls_back(tmp_path: Path) -> None:
    profile = ProfileStore(tmp_path / "home").create("artist")
    first, second = _model(tmp_path / "first", "1"), _model(tmp_path / "second", "2")
    assert profile.detector_folder is None and not profile.can_roll_back_detector()
    assert profile.install_detector_if_better(first, Evaluation("acc", 0.8), None).installed
    assert profile.detector_folder == profile.detector_path
    assert not (profile.detector_path / "phase2_settings.json").exists()
    worse = profile.install_detector_if_better(second, Evaluation("acc", 0.7), Evaluation("acc", 0.8))
    assert not worse.installed and "not better than 0.800" in worse.reason
    assert (profile.detector_path / "manifest.json").read_text() == "1"
    assert not profile.install_detector_if_better(second, None, Evaluation("acc", 0.8)).installed
    better = profile.install_detector_if_better(second, Evaluation("acc", 0.9), Evaluation("acc", 0.8))
    assert better.installed and better.reason == "installed: acc 0.900 (was 0.800)"
    assert (profile.detector_path / "manifest.json").read_text() == "2"
    assert profile.can_roll_back_detector()
    detector.roll_back(None, profile)
    assert (profile.detector_path / "manifest.json").read_text() == "1"
    assert (profile.folder / "detector.previous" / "manifest.json").read_text() == "2"
    assert not [p for p in profile.folder.iterdir() if p.name.startswith(".detector")]  # no staging left


def test_roll_back_without_a_previous_detector_is_a_clear_error(tmp_path: Path) -> None:
    profile = ProfileStore(tmp_path / "home").create("artist")
    with pytest.raises(FileNotFoundError, match="no previous detector"):
        profile.roll_back_detector()


def test_the_decision_and_its_explanation_agree(tmp_path: Path) -> None:
    profile = ProfileStore(tmp_path / "home").create("artist")
    candidate = _model(tmp_path / "new", "new")
    decision, lines = detector.install_if_better(None, profile, candidate,
                                                 (Evaluation("balanced accuracy", 0.5, "TPR 0.00, FPR 0.00"),
                                                  Evaluation("balanced accuracy", 0.75, "TPR 0.50, FPR 0.00")))
    assert decision.installed
    assert lines == ["  current: balanced accuracy 0.500 (TPR 0.00, FPR 0.00)",
                     "  new: balanced accuracy 0.750 (TPR 0.50, FPR 0.00)",
                     "Installed. installed: balanced accuracy 0.750 (was 0.500)"]
    decision, lines = detector.install_if_better(None, profile, candidate, (None, None))
    assert not decision.installed and lines[-1].startswith("Not installed: the new detector could not be evaluated")
    assert "no calibration bank" in lines[0]


def test_gwm_profile_rollback_detector_swaps_back_and_refuses_when_there_is_nothing(tmp_path, capsys) -> None:
    from gwm_desktop.cli.main import main

    profile = ProfileStore().create("artist")  # the test's own GWM_HOME
    assert main(["profile", "rollback-detector", "artist"]) == 2
    assert "no previous detector" in capsys.readouterr().err
    first, second = _model(tmp_path / "first", "1"), _model(tmp_path / "second", "2")
    profile.install_detector_if_better(first, Evaluation("acc", 0.8), None)
    profile.install_detector_if_better(second, Evaluation("acc", 0.9), Evaluation("acc", 0.8))
    assert main(["profile", "rollback-detector", "artist"]) == 0
    assert (profile.detector_path / "manifest.json").read_text() == "1"
    assert main(["profile", "rollback-detector", "artist"]) == 0  # and back again
    assert (profile.detector_path / "manifest.json").read_text() == "2"


def test_an_installed_detector_serves_only_the_shipped_model_it_was_tuned_from(engine) -> None:
    # After an upgrade the profile's Phase 2 detector (tuned from the earlier model's G) cannot read the
    # new watermark: new scans use the new shipped model, scans for the earlier model use the detector.
    import shutil

    from gwm_desktop.core.engine import same_watermark
    from gwm_desktop.resources import EARLIER_MODELS, earlier_model_dir

    profile = ProfileStore().create("upgraded")
    name = next(iter(EARLIER_MODELS))
    shutil.copytree(earlier_model_dir(name), profile.detector_path)
    assert engine.bundle_for(profile) is engine.bundle
    tuned_earlier = engine.bundle_for(profile, name)
    assert tuned_earlier is not engine.shipped(name) and same_watermark(tuned_earlier, engine.shipped(name))
    assert not same_watermark(engine.bundle, engine.shipped(name))
    # A detector tuned from this model is this model's
    shutil.rmtree(profile.detector_path)
    shutil.copytree(engine.model_dir, profile.detector_path)
    engine.invalidate_profile(profile)   # as an install does
    own = engine.bundle_for(profile)
    assert own is not engine.bundle and same_watermark(own, engine.bundle)
    assert engine.bundle_for(profile, name) is engine.shipped(name)
