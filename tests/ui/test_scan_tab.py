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
