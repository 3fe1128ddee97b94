"""Advanced tab: a short Phase 1 run completes and exports a model; another is cancelled and can resume.

The tab drives the fake Phase 1 job (tests/jobs/fake.py); tests/jobs/test_real_jobs.py runs the real one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs.fake import use_fake_jobs
from tests.ui.conftest import write_images


@pytest.fixture(autouse=True)
def _fake_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_jobs(monkeypatch)


def configure(tab, data: Path, steps: int) -> None:
    tab.job_combo.setCurrentIndex(tab.job_combo.findData("phase1"))
    tab.data_edit.setText(str(data))
    tab.steps_spin.setValue(steps)
    tab.batch_spin.setValue(2)
    tab.device_combo.setCurrentIndex(tab.device_combo.findData("cpu"))


def test_phase1_run_completes_then_another_is_cancelled(window, qtbot, tmp_path: Path) -> None:
    tab = window.advanced_tab
    data = tmp_path / "train"
    write_images(data, 8, size=(96, 96))
    configure(tab, data, steps=2)
    with qtbot.waitSignal(tab.job_finished, timeout=20_000) as done:
        assert tab.start_job()
    assert done.args == ["done"], tab.log.toPlainText()[-2000:]
    assert (tab.outcome.model_dir / "manifest.json").exists()
    assert len(tab.plot.points["loss_g"]) == 2
    assert "step 2" in tab.log.toPlainText()
    qtbot.waitUntil(tab.install_button.isEnabled, timeout=5000)

    configure(tab, data, steps=500)
    tab.resume_check.setChecked(True)
    steps_seen = []

    def cancel_soon(progress) -> None:
        if (progress.payload or {}).get("step"):
            steps_seen.append(progress.done)
            tab.cancel_job()

    with qtbot.waitSignal(tab.job_finished, timeout=20_000) as cancelled:
        tab.start_job()
        tab.runner.worker.yielded.connect(cancel_soon)
    assert cancelled.args == ["cancelled"]
    assert steps_seen and steps_seen[0] == 3  # resumed after the 2 finished steps
    assert list((Path(tab.spec().out) / "checkpoints").iterdir())
    qtbot.waitUntil(lambda: not tab.runner.busy and tab.start_button.isEnabled(), timeout=10_000)
