"""Opening the GUI never loads torch on the UI thread: the window paints first, the model loads after.

The import-linter contract forbids only direct imports of torch from ui/; this runs the real startup
in a fresh interpreter and looks at what it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

app = QApplication(sys.argv[:1])
import gwm_desktop.ui.app
import gwm_desktop.ui.main_window
from gwm_desktop.ui.settings import Settings

settings = Settings(QSettings(sys.argv[1], QSettings.Format.IniFormat))
window = gwm_desktop.ui.app.build_window(settings=settings, load_model=False)  # the model loads on a worker
window.show()
app.processEvents()
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "lpips"))
print(json.dumps({"visible": window.isVisible(), "loaded": loaded}))
"""


def test_importing_and_showing_the_main_window_does_not_load_torch(tmp_path: Path):
    env = dict(os.environ, GWM_HOME=str(tmp_path / "home"), QT_QPA_PLATFORM="offscreen",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "settings.ini")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["visible"]
    assert report["loaded"] == [], f"the GUI's startup imported {report['loaded'][:5]}"
