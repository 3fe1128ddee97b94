"""Scan tab, model-level verdict: the switch runs it after the scan, in words, with a report to save."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ui.conftest import write_images


def verdict_after_scan(qtbot, tab, timeout: int = 120_000):
    with qtbot.waitSignal(tab.verdict_panel.verdict_finished, timeout=timeout) as blocker:
        assert tab.start_scan()
    return blocker.args[0]


@pytest.mark.slow
def test_switch_gives_a_worded_verdict_and_an_evidence_report(window, qtbot, tmp_path: Path) -> None:
    tab, panel = window.scan_tab, window.scan_tab.verdict_panel
    profile = window.context.profile()
    engine = window.context.engine
    art = write_images(tmp_path / "art", 8, size=(256, 224), seed=70)
    list(engine.protect_files(art, tmp_path / "model-outputs", profile, 0.05))
    assert not panel.headline.isVisibleTo(panel)  # nothing to say before a verdict
    panel.switch.setChecked(True)
    tab.add_paths([tmp_path / "model-outputs"])
    result = verdict_after_scan(qtbot, tab)
    assert result.verdict and result.n == 8
    assert panel.headline.isVisibleTo(panel) and panel.headline.text().startswith("Strong evidence: a model that never "
                                                                           "learned your watermark would produce")
    assert "proof" not in panel.headline.text().lower()
    assert not panel.details.isVisibleTo(panel)
    panel.details_button.click()
    assert panel.details.isVisibleTo(panel) and "p-value" in panel.details.text() and "Images tested: 8" in panel.details.text()
    report = tmp_path / "evidence.html"
    assert panel.save_report(report)
    facts = json.loads(report.with_suffix(".json").read_text())
    assert facts["verdict"]["n"] == 8 and facts["protection_log"]["count"] == 8

    # the artist's clean originals, as if another model's outputs: no verdict, worded so
    tab.clear_inputs()
    tab.add_paths(art)
    clean = verdict_after_scan(qtbot, tab)
    assert not clean.verdict
    assert panel.headline.text().startswith(("No evidence", "Weak evidence"))


def test_switch_off_runs_no_verdict_and_is_remembered(window, qtbot, tmp_path: Path) -> None:
    tab, panel = window.scan_tab, window.scan_tab.verdict_panel
    assert not panel.switch.isChecked()
    tab.add_paths(write_images(tmp_path / "art", 2))
    with qtbot.waitSignal(tab.scan_finished, timeout=60_000):
        assert tab.start_scan()
    assert not panel.busy and panel.result is None and not panel.headline.isVisibleTo(panel)
    panel.switch.setChecked(True)  # switched on afterwards: tests the images already scanned
    qtbot.waitUntil(lambda: panel.result is not None, timeout=60_000)
    assert window.context.settings.get("scan_model_verdict") is True


@pytest.mark.slow
def test_a_new_scan_clears_the_last_verdict_and_waits_for_a_running_one(window, qtbot, tmp_path: Path) -> None:
    tab, panel = window.scan_tab, window.scan_tab.verdict_panel
    panel.switch.setChecked(True)
    tab.add_paths(write_images(tmp_path / "first", 3))
    verdict_after_scan(qtbot, tab)
    assert panel.result.n == 3
    tab.clear_inputs()
    tab.add_paths(write_images(tmp_path / "second", 2, seed=9))
    result = verdict_after_scan(qtbot, tab)
    assert result.n == 2 and {p.parent.name for p in (c.path for c in result.images)} == {"second"}
    panel.switch.setChecked(False)
    panel.switch.setChecked(True)  # re-tests the table's images on a worker
    assert panel.busy and not tab.start_scan()  # no second job on top of it
    qtbot.waitUntil(lambda: not panel.busy, timeout=60_000)
    panel.switch.setChecked(False)
    with qtbot.waitSignal(tab.scan_finished, timeout=60_000):
        assert tab.start_scan()
    assert panel.result is None and not panel.headline.isVisibleTo(panel)  # no stale verdict beside new rows
