"""The UI thread stays responsive while export and scan run: a heartbeat timer is rarely late by more
than 100 ms and never frozen for a second.

One beat 695 ms late was seen once in a full CI run on a loaded 2-core machine (not reproduced, the
test passing alone and in reruns): the operating system, not the app, can delay one beat while the
worker's threads hold both cores. Work done on the UI thread would hold every beat of the job, for
seconds, so the bounds below still fail on the regression this test is for."""

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
        self.late_ms: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.beat)

    def beat(self) -> None:
        now = time.perf_counter()
        self.late_ms.append((now - self.last) * 1000 - INTERVAL_MS)
        self.last = now

    @property
    def beats(self) -> int:
        return len(self.late_ms)

    def check(self, job: str) -> None:
        """At most one beat in 20 later than 100 ms, and none later than a second (a visible freeze)."""
        late = sorted(self.late_ms)
        typical = late[int(0.95 * (len(late) - 1))]
        assert typical <= 100, f"{job}: 1 heartbeat in 20 is {typical:.0f} ms late or more"
        assert late[-1] <= 1000, f"{job}: the UI froze for {late[-1]:.0f} ms"

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
    export_beat.check("export")
    scan_beat.check("scan")
