"""Build the GenWatermark Desktop bundle into dist/, then report its size.

    python packaging/build.py            # full: Protect, Scan, Phase 1 and Phase 2 training
    python packaging/build.py --lean     # without Phase 2 (diffusers, transformers, accelerate, peft)

Run it with the Python of the environment whose packages should ship (PyInstaller installed there:
``pip install pyinstaller``). The result is ``dist/gwm-desktop/`` (``dist/gwm-desktop-lean/`` for
--lean; ``dist/GenWatermark.app`` on macOS); start it with ``gwm-desktop`` inside, check it with
``gwm-desktop --self-test``. The size report is printed and written to packaging/SIZE_REPORT.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "packaging" / "gwm_desktop.spec"
REPORT = ROOT / "packaging" / "SIZE_REPORT.md"
TOP_PARTS = 15
USER_DOCS = ("LICENSE", "THIRD_PARTY_NOTICES.md")
LINUX_MENU_SCRIPT = ROOT / "packaging" / "linux" / "install-desktop-entry.sh"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lean", action="store_true", help="leave out Phase 2 (diffusers, transformers, ...)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's work folder (default: build/pyinstaller/)")
    parser.add_argument("--clean", action="store_true", help="drop PyInstaller's cache first (slower)")
    parser.add_argument("--log-level", default="WARN", help="PyInstaller's log level (INFO shows every step)")
    parser.add_argument("--report-only", action="store_true", help="skip the build; report an existing bundle")
    return parser.parse_args(argv)


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def tree_size(path: Path) -> int:
    if path.is_symlink():
        return 0  # counted where it points to (inside the bundle)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def contents_dir(bundle: Path) -> Path:
    """Where PyInstaller put the libraries: _internal/ (onedir) or Contents/Frameworks (.app)."""
    for candidate in (bundle / "_internal", bundle / "Contents" / "Frameworks"):
        if candidate.is_dir():
            return candidate
    return bundle


def size_report(bundle: Path, variant: str, seconds: float | None) -> str:
    total = tree_size(bundle)
    files = sum(1 for p in bundle.rglob("*") if p.is_file())
    inner = contents_dir(bundle)
    parts = sorted(((tree_size(p), p) for p in inner.iterdir()), key=lambda item: item[0], reverse=True)
    lines = [
        f"## {variant}: `{bundle.relative_to(ROOT) if bundle.is_relative_to(ROOT) else bundle}`",
        "",
        f"- built on {platform.system()} {platform.machine()}, Python {platform.python_version()}"
        + (f", in {seconds / 60:.1f} min" if seconds is not None else ""),
        f"- total: **{human(total)}** in {files} files ({human(sum(s for s, _ in parts))} under "
        f"`{inner.relative_to(bundle) if inner != bundle else '.'}/`)",
        "",
        f"| largest {TOP_PARTS} parts of `{inner.name}/` | size | share |",
        "|---|---:|---:|",
    ]
    for size, path in parts[:TOP_PARTS]:
        kind = "/" if path.is_dir() else ""
        lines.append(f"| `{path.name}{kind}` | {human(size)} | {100 * size / total:.1f} % |")
    rest = sum(size for size, _ in parts[TOP_PARTS:])
    lines.append(f"| {max(0, len(parts) - TOP_PARTS)} other entries | {human(rest)} | {100 * rest / total:.1f} % |")
    return "\n".join(lines) + "\n"


def write_report(section: str, variant: str) -> None:
    """Keep one section per variant in SIZE_REPORT.md, so full and lean builds can both be recorded."""
    header = "# Bundle size report\n\nWritten by `python packaging/build.py`; one section per variant.\n"
    sections: dict[str, str] = {}
    if REPORT.exists():
        current = None
        for line in REPORT.read_text(encoding="utf-8").splitlines(keepends=True):
            if line.startswith("## "):
                current = line[3:].split(":")[0].strip()
                sections[current] = ""
            if current:
                sections[current] += line
    sections[variant] = section
    body = "\n".join(sections[name].rstrip() + "\n" for name in sorted(sections))
    REPORT.write_text(header + "\n" + body, encoding="utf-8")


def build(args: argparse.Namespace, name: str) -> float:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        sys.exit(f"PyInstaller is not installed in {sys.executable}: pip install pyinstaller")
    env = dict(os.environ, GWM_BUILD_LEAN="1" if args.lean else "0", GWM_BUILD_NAME=name)
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", args.log_level,
               "--distpath", str(args.dist), "--workpath", str(args.work / name), str(SPEC)]
    if args.clean:
        command.insert(3, "--clean")
    print("$", " ".join(command), flush=True)
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.dist = args.dist.resolve()
    name = "gwm-desktop-lean" if args.lean else "gwm-desktop"
    seconds = None if args.report_only else build(args, name)
    if sys.platform == "darwin":
        bundle = args.dist / "GenWatermark.app"
    else:
        bundle = args.dist / name
        for doc in USER_DOCS:  # the licence and notices beside the executable, where a user looks
            shutil.copy2(ROOT / doc, bundle / doc)
        if sys.platform.startswith("linux"):
            shutil.copy2(LINUX_MENU_SCRIPT, bundle / LINUX_MENU_SCRIPT.name)
    section = size_report(bundle, "lean" if args.lean else "full", seconds)
    print("\n" + section)
    write_report(section, "lean" if args.lean else "full")
    print(f"size report written to {REPORT.relative_to(ROOT)}")
    executable = bundle / {"darwin": "Contents/MacOS/gwm-desktop", "win32": "gwm-desktop.exe"}.get(sys.platform,
                                                                                               "gwm-desktop")
    print(f"check the build: {executable} --self-test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
