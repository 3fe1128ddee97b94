"""training.scan_decisions: the comparison of two scans counts every changed verdict per condition."""

import json
from pathlib import Path

import pytest

from training.scan_decisions import compare_scans, parse_args


def write_scan(path: Path, flags: dict[str, bool]) -> Path:
    path.write_text("".join(json.dumps({"path": f"/x/cases/{name}.png", "score": 0.5, "flagged": flag}) + "\n"
                            for name, flag in flags.items()))
    return path


def test_compare_counts_flags_and_changes_per_condition_and_group(tmp_path: Path) -> None:
    before = write_scan(tmp_path / "a.jsonl", {"none/own/1": True, "none/own/2": False, "flip/own/1": True,
                                               "flip/originals/1": False})
    after = write_scan(tmp_path / "b.jsonl", {"none/own/1": True, "none/own/2": True, "flip/own/1": False,
                                              "flip/originals/1": False})
    table = compare_scans(before, after)
    assert table[("none", "own")] == [2, 1, 2, 1]
    assert table[("flip", "own")] == [1, 1, 0, 1]
    assert table[("flip", "originals")] == [1, 0, 0, 0]
    assert table[("all", "own")] == [3, 2, 2, 2]


def test_compare_refuses_scans_of_different_files(tmp_path: Path) -> None:
    before = write_scan(tmp_path / "a.jsonl", {"none/own/1": True})
    after = write_scan(tmp_path / "b.jsonl", {"none/own/2": True})
    with pytest.raises(SystemExit, match="same files"):
        compare_scans(before, after)


def test_parse_args_reads_each_action() -> None:
    assert parse_args(["make", "out"]).folder == Path("out")
    scan = parse_args(["scan", "out", "--tree", "/t", "--json", "s.jsonl"])
    assert (scan.tree, scan.json_out) == (Path("/t"), Path("s.jsonl"))
    assert parse_args(["compare", "a", "b"]).after == Path("b")


def test_case_files_are_named_by_folder_and_stem_under_condition_and_group(tmp_path: Path) -> None:
    """The one naming ``make`` writes by and ``training.frame_oracle`` reads by."""
    from training.scan_decisions import case_file, exports_of

    (tmp_path / "own_p0.05" / "portraits").mkdir(parents=True)
    for name in ("b.png", "a.png"):
        (tmp_path / "own_p0.05" / "portraits" / name).write_bytes(b"")
    exports = exports_of(tmp_path, "own_p0.05")
    assert [p.name for p in exports] == ["a.png", "b.png"]
    assert case_file(tmp_path, "flip", "own_p0.05", exports[0]) == tmp_path / "cases" / "flip" / "own_p0.05" / "portraits_a.png"
    assert case_file(tmp_path, "file_jpeg90", "own_p0.05", exports[0], ".jpg").name == "portraits_a.jpg"
