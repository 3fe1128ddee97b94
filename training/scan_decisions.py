"""Do two versions of the scanner decide the same? Files on disk, scanned through the CLI by each.

A change to how the scanner reads or searches an image (a faster loader, a cheaper search) should
leave its verdicts alone, or say how many it moved. This writes held-out images, clean, protected
with one profile at two levels and with another profile, under a few conditions (as PNG files, and as
a JPEG 90 file for the scanner's JPEG path), then runs ``gwm scan --json`` from a source tree of your
choice (a git worktree of the commit before, and this one), and counts the verdicts that differ.

    python -m training.scan_decisions make runs/scan_ab
    git worktree add /tmp/before HEAD~1   # with ../shared beside it if the tree needs it
    python -m training.scan_decisions scan runs/scan_ab --tree /tmp/before --json runs/scan_ab/before.jsonl
    python -m training.scan_decisions scan runs/scan_ab --tree . --json runs/scan_ab/after.jsonl
    python -m training.scan_decisions compare runs/scan_ab/before.jsonl runs/scan_ab/after.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SETS = ("../shared/data/portraits:eval:40", "../shared/data/paintings:all:0", "../shared/data/flat_art:eval:30")
CONDITIONS = ("none", "jpeg75", "flip", "random_crop", "bucket512", "rotate5")
EXPORTS = (("own_p0.01", "own", "0.01"), ("own_p0.05", "own", "0.05"), ("other_p0.05", "other", "0.05"))


@dataclass
class Config:
    action: str
    folder: Path | None = None
    sets: tuple[str, ...] = DEFAULT_SETS
    tree: Path | None = None
    json_out: Path | None = None
    before: Path | None = None
    after: Path | None = None


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m training.scan_decisions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    make = actions.add_parser("make", help="write the case files")
    make.add_argument("folder", type=Path)
    make.add_argument("--set", dest="sets", action="append", default=None,
                      help="FOLDER:SPLIT:COUNT, repeatable (COUNT 0: all); default: "
                           + ", ".join(DEFAULT_SETS))
    scan = actions.add_parser("scan", help="scan the case files with the gwm of a source tree")
    scan.add_argument("folder", type=Path)
    scan.add_argument("--tree", type=Path, required=True, help="source tree whose gwm_desktop scans")
    scan.add_argument("--json", dest="json_out", type=Path, required=True)
    compare = actions.add_parser("compare", help="count the verdicts two scans differ on")
    compare.add_argument("before", type=Path)
    compare.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    sets = tuple(getattr(args, "sets", None) or DEFAULT_SETS)
    return Config(args.action, getattr(args, "folder", None), sets, getattr(args, "tree", None),
                  getattr(args, "json_out", None), getattr(args, "before", None), getattr(args, "after", None))


def _gwm(tree: Path, home: Path, *arguments: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, GWM_HOME=str(home), PYTHONPATH=str(tree.resolve()))
    code = "import sys; from gwm_desktop.cli.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *arguments], env=env, cwd=tree, capture_output=True,
                          text=True, check=False)


def exports_of(folder: Path, group: str) -> list[Path]:
    """The files of one group (the originals, or one profile's exports at one level), in a fixed order."""
    return sorted(p for p in (folder / group).rglob("*") if p.is_file())


def case_file(folder: Path, condition: str, group: str, export: Path, suffix: str = ".png") -> Path:
    """Where ``make`` writes ``export`` (a file of ``group``) under ``condition``."""
    return folder / "cases" / condition / group / f"{export.parent.name}_{export.stem}{suffix}"


def make_cases(config: Config) -> None:
    from PIL import Image

    from training.datasets import list_images
    from training.evaluate import distortion

    folder, tree = config.folder.resolve(), Path(__file__).resolve().parents[1]
    home = folder / "home"
    for profile in ("own", "other"):
        _gwm(tree, home, "profile", "create", profile)
    for spec in config.sets:
        source, split, count = spec.rsplit(":", 2)
        paths = list_images([Path(source)], split)
        for path in paths[: int(count) or None]:
            target = folder / "originals" / Path(source).name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
    groups = ["originals"]
    for name, profile, level in EXPORTS:
        result = _gwm(tree, home, "protect", str(folder / "originals"), "--out", str(folder / name),
                      "--profile", profile, "--p", level, "--format", "png")
        if result.returncode:
            raise SystemExit(f"protect {name} failed: {result.stderr.strip()[-400:]}")
        groups.append(name)
    for group in groups:
        for path in exports_of(folder, group):
            image = Image.open(path).convert("RGB")
            for condition in CONDITIONS:
                out = case_file(folder, condition, group, path)
                out.parent.mkdir(parents=True, exist_ok=True)
                change = distortion(condition)
                (image if change is None else change(image)).save(out)
            out = case_file(folder, "file_jpeg90", group, path, ".jpg")
            out.parent.mkdir(parents=True, exist_ok=True)
            image.save(out, quality=90)
    print(f"cases under {folder / 'cases'}")


def scan_cases(config: Config) -> None:
    result = _gwm(config.tree, config.folder.resolve() / "home", "scan", str(config.folder.resolve() / "cases"),
                  "--profile", "own", "--json")
    if result.returncode not in (0, 1):
        raise SystemExit(f"scan failed: {result.stderr.strip()[-400:]}")
    config.json_out.write_text(result.stdout)
    print(f"{len(result.stdout.splitlines())} results in {config.json_out}")


def compare_scans(before: Path, after: Path) -> dict[tuple[str, str], list[int]]:
    """(condition, group) -> [files, flagged before, flagged after, verdicts changed]; ("all", group) too."""
    def read(path: Path) -> dict[str, dict]:
        return {entry["path"]: entry for entry in map(json.loads, path.read_text().splitlines())}

    first, second = read(before), read(after)
    if first.keys() != second.keys():
        raise SystemExit("the two scans did not read the same files")
    table: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])
    for path, entry in first.items():
        condition, group = Path(path).parts[-3:-1]
        flags = bool(entry["flagged"]), bool(second[path]["flagged"])
        for key in ((condition, group), ("all", group)):
            row = table[key]
            row[0] += 1
            row[1] += flags[0]
            row[2] += flags[1]
            row[3] += flags[0] != flags[1]
    return dict(table)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    if config.action == "make":
        make_cases(config)
    elif config.action == "scan":
        scan_cases(config)
    else:
        print(f"{'condition':12} {'group':12} {'files':>5} {'before %':>8} {'after %':>8} {'changed':>7}")
        for (condition, group), (n, old, new, changed) in sorted(compare_scans(config.before, config.after).items()):
            print(f"{condition:12} {group:12} {n:5} {100 * old / n:8.1f} {100 * new / n:8.1f} {changed:7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
