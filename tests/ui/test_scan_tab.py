"""Scan tab: mixed folders give the right verdicts, bad files become error rows, reports are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.bad_batch import make_mixed_batch
from tests.ui.conftest import write_images
from tests.ui.test_protect_tab import drop, export_and_wait


def scan_and_wait(qtbot, tab, timeout: int = 60_000) -> None:
    with qtbot.waitSignal(tab.scan_finished, timeout=timeout):
        assert tab.start_scan()


def test_bad_files_show_error_rows_not_a_crash(window, qtbot, tmp_path: Path) -> None:
    tab = window.scan_tab
    verdicts = make_mixed_batch(tmp_path / "mixed")
    drop(tab.table, [tmp_path / "mixed"])
    assert tab.inputs == [tmp_path / "mixed"]
    scan_and_wait(qtbot, tab)
    rows = {Path(r.path).name: r for r in tab.model.results}
    assert set(rows) == set(verdicts)
    for name, kind in verdicts.items():
        assert (rows[name].error is not None) == (kind == "bad"), name
    assert f"{sum(v == 'bad' for v in verdicts.values())} unreadable" in tab.counts_label.text()
    # the verdict filter shows only the error rows
    tab.verdict_combo.setCurrentIndex(tab.verdict_combo.findData("error"))
    assert tab.proxy.rowCount() == sum(v == "bad" for v in verdicts.values())
    assert tab.proxy.index(0, 3).data().startswith("Error: ")
    tab.verdict_combo.setCurrentIndex(0)
    tab.filter_edit.setText("truncated")
    assert tab.proxy.rowCount() == 2
    # reports
    assert tab.save_report(tmp_path / "report.csv") and tab.save_report(tmp_path / "report.html")
    assert "corrupt.jpg" in (tmp_path / "report.csv").read_text()


@pytest.mark.slow
def test_mixed_folder_scan_shows_right_verdicts(window, qtbot, tmp_path: Path) -> None:
    protect, scan = window.protect_tab, window.scan_tab
    suspects = tmp_path / "suspects"
    clean = write_images(suspects, 4, size=(384, 320), seed=50)
    protect.add_paths(write_images(tmp_path / "art", 4, size=(384, 320), seed=10))
    protect.output_edit.setText(str(suspects / "marked"))
    protect.level_slider.setValue(protect.level_slider.maximum())  # "strong": the most robust level
    export_and_wait(qtbot, protect)
    (suspects / "broken.png").write_bytes(b"not really a png")
    scan.add_paths([suspects])
    scan_and_wait(qtbot, scan)
    marked_found = []
    for result in scan.model.results:
        path = Path(result.path)
        if path.name == "broken.png":
            assert result.error and not result.flagged
        elif path.parent.name == "marked":
            marked_found.append(result.flagged)
        else:
            assert not result.flagged, path  # a clean image is never called watermarked here
    assert sum(marked_found) >= 3, marked_found  # the shipped model finds most single images, not all
    assert len(scan.model.results) == len(clean) + 4 + 1
    # sorted by score, highest first: watermarked images on top
    top = scan.proxy.index(0, 1).data()
    assert any(r.flagged and Path(r.path).name == top for r in scan.model.results)


@pytest.mark.slow
def test_older_exports_are_found_when_the_previous_watermark_is_chosen(window, qtbot, tmp_path: Path, capsys) -> None:
    from gwm_desktop.resources import earlier_model_dir
    from tests.fixtures.cli_run import run_gwm

    previous = earlier_model_dir("previous")
    assert previous is not None, "the build ships resources/models/previous"
    scan = window.scan_tab
    assert not scan.model_combo.isHidden()             # shown: this build carries an earlier model
    assert scan.model_combo.findData("previous") > 0 and scan.model_combo.currentData() is None
    art = write_images(tmp_path / "art", 3, size=(384, 320), seed=20)
    profile = window.context.profile()
    # An export made by the previous version: the same profile key, the previous model.
    code, text = run_gwm(["protect", *art, "--out", tmp_path / "old", "--model", previous,
                          "--profile", profile.name, "--level", "strong"], capsys)
    assert code == 0, text
    scan.add_paths([tmp_path / "old"])
    scan.verdict_panel.switch.setChecked(True)        # the model-level verdict follows the same choice
    with qtbot.waitSignal(scan.verdict_panel.verdict_finished, timeout=120_000) as verdict:
        scan_and_wait(qtbot, scan)
    assert len(scan.model.results) == 3 and not any(r.flagged for r in scan.model.results)  # another frame
    assert not verdict.args[0].verdict
    scan.model_combo.setCurrentIndex(scan.model_combo.findData("previous"))
    with qtbot.waitSignal(scan.verdict_panel.verdict_finished, timeout=120_000) as verdict:
        scan_and_wait(qtbot, scan)
    assert all(r.flagged for r in scan.model.results), [r.score for r in scan.model.results]
    assert verdict.args[0].verdict and verdict.args[0].p_value < 1e-3
    assert "previous watermark" in scan.counts_label.text()
    assert scan.save_report(tmp_path / "report.html")
    assert "exports made before 2 December 2026" in (tmp_path / "report.html").read_text()
    # The evidence report names the model whose detector gave the evidence: the previous one.
    import json

    from gwm_desktop.core.evidence_report import model_version

    assert scan.verdict_panel.save_report(tmp_path / "evidence.html")
    manifest = json.loads((previous / "manifest.json").read_text())
    assert model_version(manifest) in (tmp_path / "evidence.html").read_text()
    assert model_version(manifest) != model_version(window.context.engine.bundle.manifest)
