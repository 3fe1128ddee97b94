"""``gwm-desktop --self-test``: prove that a build works, without a person and without the network.

It builds the main window once offscreen (so the Qt plugins must be there), then protects the bundled
sample painting at LPIPS budget 0.05 and scans both the protected copy and the original. Exit code 0
only if the protected copy stays within budget and is flagged while the original is not.

Everything happens in a temporary data home and settings file, removed afterwards: the user's profiles
and settings are never read or written.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SAMPLE = ("samples", "rijksmuseum_SK-A-768.jpg")
BUDGET = 0.05  # LPIPS budget p of the protect job: the "balanced" level the app recommends
# A fixed key makes the check reproducible: with a fresh random key the original would be flagged, by
# design, in about 1 % of runs (the scan's false-positive rate). It is only ever used in a temp home.
SELF_TEST_KEY = hashlib.sha256(b"GenWatermark self-test key").digest()

Log = Callable[[str], None]


def _print(line: str) -> None:
    if sys.stdout is not None:  # a windowed Windows build without a console has none
        print(line, flush=True)


def _attach_parent_console() -> None:
    """A windowed Windows build has no stdout: write into the console that started it, if any."""
    if sys.platform != "win32" or sys.stdout is not None:
        return
    import ctypes

    if ctypes.windll.kernel32.AttachConsole(-1):  # ATTACH_PARENT_PROCESS
        sys.stdout = open("CONOUT$", "w", encoding="utf-8", errors="replace")  # noqa: SIM115 - lives as long as the process


@contextmanager
def _temporary_env(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def check_qt(workdir: Path, log: Log) -> None:
    """Create the application offscreen (unless a platform is chosen) and build the main window once."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QLibraryInfo, QSettings
    from PySide6.QtGui import QImageReader
    from PySide6.QtWidgets import QApplication

    from gwm_desktop.core.profiles import ProfileStore
    from gwm_desktop.ui.settings import Settings
    from gwm_desktop.ui.window import build_window

    started = time.monotonic()
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "gwm-desktop"])
    settings = Settings(QSettings(str(workdir / "settings.ini"), QSettings.Format.IniFormat))
    window = build_window(settings=settings, store=ProfileStore(workdir / "home"), load_model=False)
    window.show()
    app.processEvents()
    title = window.windowTitle()
    window.shutdown(10)
    window.close()
    window.deleteLater()
    app.processEvents()
    formats = sorted(bytes(f.data()).decode() for f in QImageReader.supportedImageFormats())
    platforms = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    available = sorted(p.name.split(".")[0].removeprefix("lib").removeprefix("q") for p in platforms.glob("*q*.*")
                       if p.suffix in (".so", ".dll", ".dylib"))
    log(f"qt:       platform {app.platformName()}, window '{title}' built in {time.monotonic() - started:.1f} s")
    log(f"          platform plugins: {' '.join(available) or 'none found'}; image formats: {' '.join(formats)}")


def check_protect_and_scan(workdir: Path, device: str, log: Log, model_dir: Path | None = None) -> bool:
    """Protect the sample at p=0.05, scan protected and original; True when every figure is as expected."""
    from gwm_desktop.core.engine import Engine
    from gwm_desktop.core.image_io import EncodeOptions
    from gwm_desktop.core.profiles import ProfileStore
    from gwm_desktop.resources import resource_path, resources_dir

    sample = resource_path(*SAMPLE)
    log(f"resources: {resources_dir()}")
    if not sample.is_file():
        log(f"FAIL: the bundled sample is missing: {sample}")
        return False

    started = time.monotonic()
    engine = Engine(model_dir, device=device)
    log(f"engine:   {engine.device_description}; model and LPIPS loaded in {time.monotonic() - started:.1f} s")

    profile = ProfileStore(workdir / "home").create("self-test", key=SELF_TEST_KEY)
    started = time.monotonic()
    # PNG: the check is about the build, not about how well the model survives a lossy re-encode.
    options = EncodeOptions(format="png")
    items = [step.payload for step in engine.protect_files([sample], workdir / "out", profile, BUDGET, options)]
    if len(items) != 1 or not items[0].ok:
        log(f"FAIL: protect did not produce one output: {[item.error for item in items]}")
        return False
    item = items[0]
    log(f"protect:  {sample.name} -> {item.output.name} in {time.monotonic() - started:.1f} s; "
        f"LPIPS {item.lpips:.4f} (budget {BUDGET}), PSNR {item.psnr:.1f} dB, strength {item.strength:.3f}")

    started = time.monotonic()
    results = [step.payload for step in engine.scan_files([item.output, sample], profile)]
    log(f"scan:     2 images in {time.monotonic() - started:.1f} s")
    by_path = {Path(result.path).resolve(): result for result in results}
    protected, original = by_path.get(item.output.resolve()), by_path.get(sample.resolve())
    for name, result in (("protected", protected), ("original", original)):
        if result is None or result.error:
            log(f"FAIL: scanning the {name} image failed: {result.error if result else 'no result'}")
            return False
        p_value = "" if result.p_value is None else f", p {result.p_value:.3g}"
        log(f"          {name:<9} score {result.score:.3f}, agreement {result.agreement:+.3f}{p_value}, "
            f"{'FLAGGED' if result.flagged else 'not flagged'}")

    ok = True
    if item.lpips is None or item.lpips > BUDGET:
        log(f"FAIL: LPIPS {item.lpips} is over the budget {BUDGET}")
        ok = False
    if not protected.flagged:
        log("FAIL: the protected copy was not flagged")
        ok = False
    if original.flagged:
        log("FAIL: the original was flagged")
        ok = False
    return ok


def check_phase2(log: Log) -> None:
    """Import what Phase 2 training needs, when this build has it (diffusers checks its dependencies'
    metadata at import, which is what a frozen build most easily gets wrong)."""
    import importlib.util

    if importlib.util.find_spec("diffusers") is None or importlib.util.find_spec("training.phase2") is None:
        log("phase 2:  not in this build")
        return
    started = time.monotonic()
    import accelerate
    import diffusers
    import peft
    import transformers
    from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

    import training.phase2.personalize  # noqa: F401
    import training.phase2.pipeline  # noqa: F401

    log(f"phase 2:  diffusers {diffusers.__version__}, transformers {transformers.__version__}, accelerate "
        f"{accelerate.__version__}, peft {peft.__version__} import in {time.monotonic() - started:.1f} s")


def check_key_backup(workdir: Path, log: Log) -> bool:
    """Seal and reopen a key backup: proves the encryption library made it into the build."""
    from gwm_desktop.core.profiles import ProfileStore

    started = time.monotonic()
    store = ProfileStore(workdir / "backup-home")
    original = store.create("backup-check", key=SELF_TEST_KEY)
    store.export(original.name, workdir / "backup.gwmkey", "self-test passphrase")
    restored, encrypted = ProfileStore(workdir / "restore-home").import_(workdir / "backup.gwmkey",
                                                                          passphrase="self-test passphrase")
    if not encrypted or restored.key != SELF_TEST_KEY:
        log("FAIL: an encrypted key backup did not round-trip")
        return False
    log(f"backup:   encrypted key backup sealed and reopened in {time.monotonic() - started:.1f} s")
    return True


def run_self_test(device: str = "auto", log: Log = _print, phase2: bool | None = None,
                  model_dir: Path | None = None) -> int:
    """0 if the window builds and protect + scan of the bundled sample behave; 1 otherwise.

    ``phase2``: also import the Phase 2 libraries; by default only in a frozen build, where their
    bundling is what needs proving (in a source checkout the import costs ~10 s and proves little).
    ``model_dir``: the model to check; by default the shipped one (resources/models/default).
    """
    if phase2 is None:
        phase2 = bool(getattr(sys, "frozen", False))
    if log is _print:
        _attach_parent_console()
    started = time.monotonic()
    frozen = "frozen" if getattr(sys, "frozen", False) else "source"
    log(f"GenWatermark self-test ({frozen}; Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()})")
    workdir = Path(tempfile.mkdtemp(prefix="gwm-selftest-"))
    try:
        with _temporary_env(GWM_HOME=str(workdir / "home"), HF_HUB_OFFLINE="1"):
            check_qt(workdir, log)
            import torch  # already loaded by the window's imports or about to be by the engine

            log(f"torch:    {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
            ok = check_protect_and_scan(workdir, device, log, model_dir)
            ok = check_key_backup(workdir, log) and ok
            if phase2:
                check_phase2(log)
    except Exception:  # noqa: BLE001 - a self-test reports every failure as a failure, with its trace
        log("FAIL: " + traceback.format_exc().rstrip())
        ok = False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"{'PASS' if ok else 'FAIL'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_self_test())
