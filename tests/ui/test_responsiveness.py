"""The UI thread stays responsive while export and scan run: a heartbeat timer is never >100 ms late."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from tests.ui.conftest import write_images

INTERVAL_MS = 20


class Heartbeat:
    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.worst_late_ms = 0.0
        self.beats = 0
        self.timer = QTimer()
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.beat)

    def beat(self) -> None:
        now = time.perf_counter()
        self.worst_late_ms = max(self.worst_late_ms, (now - self.last) * 1000 - INTERVAL_MS)
        self.last = now
        self.beats += 1

    def __enter__(self) -> Heartbeat:
        self.last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.timer.stop()


@pytest.mark.slow
def test_heartbeat_during_export_and_scan(window, qtbot, tmp_path: Path) -> None:
    protect, scan = window.protect_tab, window.scan_tab
    window.tabs.setCurrentWidget(protect)
    protect.add_paths(write_images(tmp_path / "art", 6, size=(640, 480)))
    protect.output_edit.setText(str(tmp_path / "out"))
    with Heartbeat() as export_beat, qtbot.waitSignal(protect.export_finished, timeout=120_000):
        protect.start_export()
    window.tabs.setCurrentWidget(scan)
    write_images(tmp_path / "more", 60, size=(200, 150), seed=100)
    scan.add_paths([tmp_path / "out", tmp_path / "more"])
    with Heartbeat() as scan_beat, qtbot.waitSignal(scan.scan_finished, timeout=120_000):
        scan.start_scan()
    assert export_beat.beats > 5 and scan_beat.beats > 2
    assert export_beat.worst_late_ms <= 100, f"export: heartbeat {export_beat.worst_late_ms:.0f} ms late"
    assert scan_beat.worst_late_ms <= 100, f"scan: heartbeat {scan_beat.worst_late_ms:.0f} ms late"
