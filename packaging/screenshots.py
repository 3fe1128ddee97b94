"""Regenerate docs/screenshots/*.png: each tab at 1280x800, light and dark, as an artist sees it.

Run under Xvfb (real X11 rendering, fonts and window decorations of the app itself):

    Xvfb :99 -screen 0 1280x800x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb PYTHONPATH=. python packaging/screenshots.py

Uses the sample paintings in ../shared/data/paintings when present, else generated artwork. Works in
a temporary GWM_HOME, so no real profile or setting is touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"
PAINTINGS = ROOT.parent / "shared" / "data" / "paintings"


def sample_images(folder: Path, count: int = 6) -> list[Path]:
    real = sorted(p for p in PAINTINGS.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count] \
        if PAINTINGS.is_dir() else []
    if real:
        return real
    from PIL import Image

    from tests.fixtures.bad_batch import photo_like_u8

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"artwork_{i + 1}.png"
        Image.fromarray(photo_like_u8(600, 800, seed=i)).save(path)
        paths.append(path)
    return paths


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="gwm-shots-"))
    os.environ["GWM_HOME"] = str(home)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    from gwm_desktop.core.profiles import ProfileStore
    from gwm_desktop.ui import theme
    from gwm_desktop.ui.app import build_window
    from gwm_desktop.ui.settings import Settings

    settings = Settings(QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat))
    store = ProfileStore(home)
    store.create("Mara Ink")
    settings.set("profile", "Mara Ink")
    theme.apply_theme(app, "light")
    window = build_window(settings=settings, store=store)
    window.resize(1280, 800)
    window.show()

    def pump(predicate: Callable[[], bool] = lambda: True, timeout_s: float = 120.0) -> None:
        import time

        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            app.processEvents()
            if predicate():
                app.processEvents()
                return
            time.sleep(0.02)

    pump(lambda: window.context.engine is not None)
    images = sample_images(home / "samples")
    protect, scan, advanced = window.protect_tab, window.scan_tab, window.advanced_tab
    protect.add_paths(images)
    protect.output_edit.setText(str(home / "protected"))
    pump(lambda: not protect.compare.after.isNull() and not protect.preview_runner.busy)
    with_export = True
    if with_export:
        protect.start_export()
        pump(lambda: not protect.export_runner.busy)
    scan.add_paths([home / "protected", images[0].parent])
    scan.start_scan()
    pump(lambda: not scan.runner.busy)
    pump(lambda: False, 1.5)  # thumbnails
    advanced.data_edit.setText(str(images[0].parent))
    advanced.job_combo.setCurrentIndex(0)
    # The shipped model's own Phase 1 log, when this checkout has it: real curves, never made up.
    log = Path(__file__).resolve().parents[1] / "runs" / "phase1_v2" / "log.jsonl"  # training/reproduce_default_model.sh
    if log.exists():
        import json

        entries = {e["step"]: e for e in map(json.loads, log.read_text().splitlines())}  # last run wins
        # Only the steps the shipped model has (the run went on a few steps before it was stopped).
        manifest = json.loads((ROOT / "resources" / "models" / "default" / "manifest.json").read_text())
        shipped = manifest.get("training", {}).get("steps_done", max(entries))
        entries = {step: e for step, e in entries.items() if step <= shipped}
        for step in sorted(entries)[::10]:
            e = entries[step]
            advanced.plot.add(step, {k: e[k] for k in ("loss_d", "loss_g", "lpips", "bit_acc")})
        last = entries[max(entries)]
        advanced._log(f"step {last['step']}: loss_d={last['loss_d']:.4f}, loss_g={last['loss_g']:.4f}, "
                      f"lpips={last['lpips']:.4f}, bit_acc={last['bit_acc']:.4f} (shipped model's Phase 1 log)")

    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("light", "dark"):
        window.set_theme(name)
        for index, tab in enumerate(("protect", "scan", "advanced")):
            window.tabs.setCurrentIndex(index)
            pump(lambda: False, 0.6)
            path = OUT / f"{tab}-{name}.png"
            window.grab().save(str(path))
            print(path)
    # The model-level verdict: the protected images alone, taken as one model's outputs, numbers shown.
    panel = scan.verdict_panel
    scan.clear_inputs()
    scan.add_paths([home / "protected"])
    panel.details_button.setChecked(True)
    panel.switch.setChecked(True)  # with results in the table this tests them at once: let it finish
    pump(lambda: not panel.busy)
    window.tabs.setCurrentIndex(1)

    def scan_with_verdict_and_shoot(stem: str) -> None:
        """Scan the inputs (the verdict follows), then one screenshot per theme: ``stem``-light/dark.png."""
        scan.start_scan()
        pump(lambda: panel.result is not None and not panel.busy and not scan.runner.busy)
        pump(lambda: False, 1.5)  # thumbnails
        for name in ("light", "dark"):
            window.set_theme(name)
            pump(lambda: False, 0.6)
            path = OUT / f"{stem}-{name}.png"
            window.grab().save(str(path))
            print(path)

    scan_with_verdict_and_shoot("verdict")
    # Older exports: images protected by the previous version, scanned with "Look for" set to it.
    from gwm_desktop.core.engine import Engine
    from gwm_desktop.resources import earlier_model_dir

    previous = earlier_model_dir("previous")
    if previous is not None:
        older = home / "exported-last-year"
        list(Engine(previous, "cpu").protect_files(images, older, window.context.profile(), 0.05))
        panel.details_button.setChecked(False)
        scan.clear_inputs()
        scan.add_paths([older])
        scan.model_combo.setCurrentIndex(scan.model_combo.findData("previous"))
        scan_with_verdict_and_shoot("scan-previous")
    window.shutdown(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
