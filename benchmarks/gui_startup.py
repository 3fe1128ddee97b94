"""Seconds from process start until the main window is shown (SPEC: <= 3 s on a CPU machine).

Run: ``PYTHONPATH=. python benchmarks/gui_startup.py`` (add QT_QPA_PLATFORM=offscreen without a display).
Measures a fresh interpreter each time (cold imports included), with a temporary GWM_HOME and settings.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import time, sys
t0 = time.perf_counter()
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv)
from gwm_desktop.ui import theme
from gwm_desktop.ui.app import build_window
from gwm_desktop.ui.settings import Settings
settings = Settings(QSettings(sys.argv[1], QSettings.IniFormat))
theme.apply_theme(app, "light")
window = build_window(settings=settings)
window.show()
def shown():  # runs before the engine host's first timer: what the UI thread imported to paint
    print(f"{time.perf_counter() - t0:.3f} {'torch' in sys.modules}", flush=True)
    window.context.engine_host.wait(120)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def measure(runs: int = 3) -> list[tuple[float, bool]]:
    """(seconds until shown, whether torch was imported by then) for each fresh interpreter."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, GWM_HOME=home)
            env.setdefault("QT_QPA_PLATFORM", "offscreen")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH", "")]))
            out = subprocess.run([sys.executable, "-c", CHILD, os.path.join(home, "s.ini")], env=env, check=True,
                                 capture_output=True, text=True).stdout
            seconds, torch_loaded = out.split()[:2]
            times.append((float(seconds), torch_loaded == "True"))
    return times


if __name__ == "__main__":
    results = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print("window shown after (s):", " ".join(f"{t:.2f}" for t, _ in results))
    print(f"median {statistics.median(t for t, _ in results):.2f} s (target <= 3 s)")
    loaded = sum(torch for _, torch in results)
    print(f"torch imported before the window was shown: {loaded} of {len(results)} runs (target 0)")
