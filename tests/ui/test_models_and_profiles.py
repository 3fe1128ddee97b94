"""Item models at scale, the worker contract, profiles and settings."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt

from gwm_desktop.core.detect import ScanResult
from gwm_desktop.ui.models import SCORE, VERDICT, ScanFilterProxy, ScanResultsModel, ThumbnailCache
from gwm_desktop.ui.workers import GeneratorWorker
from tests.ui.conftest import noise_images


def test_ten_thousand_rows_sort_filter_quickly_with_bounded_thumbnails(qtbot, tmp_path: Path) -> None:
    images = noise_images(tmp_path, 30)
    cache = ThumbnailCache(side=32, capacity=10)
    model = ScanResultsModel(cache)
    proxy = ScanFilterProxy()
    proxy.setSourceModel(model)
    proxy.sort(SCORE, Qt.SortOrder.DescendingOrder)
    started = time.perf_counter()
    for batch in range(100):  # as the scan tab flushes: 100 inserts of 100 rows
        model.add_results([ScanResult(images[i % 30].with_name(f"img_{batch}_{i}.png"), (batch * 100 + i) / 10_000,
                                      0.0, (batch + i) % 3 == 0) for i in range(100)])
    assert model.rowCount() == 10_000
    assert proxy.index(0, 2).data() == "1.000"
    proxy.set_verdict_filter("found")
    assert 0 < proxy.rowCount() < 10_000
    proxy.set_text_filter("img_7_")
    assert proxy.rowCount() == sum((7 + i) % 3 == 0 for i in range(100))
    assert time.perf_counter() - started < 10
    for path in images:
        cache.get(str(path))
    qtbot.waitUntil(lambda: len(cache) >= 10 and not cache._running, timeout=10_000)
    assert len(cache) <= 10
    cache.close()


def test_worker_signals_and_cooperative_cancel(qtbot) -> None:
    def counting(cancel):
        yield from range(3)
        return "done"

    worker = GeneratorWorker(counting)
    seen = []
    worker.yielded.connect(seen.append)
    with qtbot.waitSignal(worker.returned) as returned:
        worker.start()
    assert seen == [0, 1, 2] and returned.args == ["done"]

    def endless(cancel):
        while True:
            time.sleep(0.005)
            yield 1

    worker = GeneratorWorker(endless)
    with qtbot.waitSignal(worker.aborted, timeout=5000):
        worker.start()
        worker.quit()
    assert worker.wait(5)


def test_profiles_create_rename_export_import_delete(window, tmp_path: Path, monkeypatch) -> None:
    from gwm_desktop.ui import profile_bar

    warnings = []
    monkeypatch.setattr(profile_bar.QMessageBox, "warning", lambda _parent, _title, text: warnings.append(text))
    bar = window.profile_bar
    store = window.context.store
    assert bar.create("Mara Ink")
    assert bar.combo.currentText() == "Mara Ink" and window.context.profile_name == "Mara Ink"
    assert bar.rename("Mara")
    assert store.exists("Mara") and not store.exists("Mara Ink")
    backup = tmp_path / "mara.gwmkey"
    assert bar.export(backup, passphrase="mara's secret") and backup.exists()
    key = store.get("Mara").key
    assert bar.delete(confirm=False) and not store.exists("Mara")
    assert bar.import_(backup, passphrase="mara's secret") and store.get("Mara").key == key
    assert not bar.create("bad/name")  # a readable error, no crash
    assert warnings and "invalid profile name" in warnings[-1]


def test_key_backups_ask_for_a_hidden_passphrase(window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from gwm_desktop.ui import profile_bar

    asked, answers, warnings = [], [], []

    def get_text(_parent, _title, label, echo=None, *rest):  # noqa: ANN001, ANN002, ANN202
        asked.append((label, echo))
        return answers.pop(0), True

    monkeypatch.setattr(profile_bar.QInputDialog, "getText", get_text)
    monkeypatch.setattr(profile_bar.QMessageBox, "warning", lambda _parent, _title, text: warnings.append(text))
    bar, store = window.profile_bar, window.context.store
    assert bar.create("Ines")
    backup = tmp_path / "ines.gwmkey"
    answers[:] = ["a long passphrase", "a typo passphrase"]
    assert not bar.export(backup) and not backup.exists() and "differ" in warnings[-1]
    answers[:] = ["a long passphrase", "a long passphrase"]
    assert bar.export(backup) and backup.exists()
    assert [echo for _label, echo in asked] == [profile_bar.QLineEdit.EchoMode.Password] * 4
    key = store.get("Ines").key
    assert bar.delete(confirm=False)
    answers[:] = ["not the passphrase"]
    assert not bar.import_(backup) and "wrong passphrase" in warnings[-1] and not store.exists("Ines")
    answers[:] = ["a long passphrase"]
    assert bar.import_(backup) and store.get("Ines").key == key


def test_settings_persist_between_windows(window, settings) -> None:
    tab = window.protect_tab
    tab.level_slider.setValue(1)
    tab.format_combo.setCurrentIndex(tab.format_combo.findData("png"))
    tab.save_settings()
    assert settings.get("level") == "very-subtle" and settings.get("format") == "png"


def test_a_rows_tooltip_gives_the_key_rank_tests_p(qtbot, tmp_path: Path) -> None:
    cache = ThumbnailCache(side=32, capacity=4)
    model = ScanResultsModel(cache)
    model.add_results([ScanResult(tmp_path / "a.png", 0.31, 0.12, True, p_value=0.004),
                       ScanResult(tmp_path / "b.png", 0.2, 0.05, False)])          # a Phase 2 detector: no p
    tip = model.index(0, VERDICT).data(Qt.ItemDataRole.ToolTipRole)
    assert "Watermark found" in tip and "p = 0.004 (about 1 in 250)" in tip
    assert "p =" not in model.index(1, VERDICT).data(Qt.ItemDataRole.ToolTipRole)
    assert "random keys" in model.headerData(VERDICT, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    cache.close()
