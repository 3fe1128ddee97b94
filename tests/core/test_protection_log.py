"""The protection log: every export recorded with its SHA-256, append-only and safe with two writers."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

from gwm_desktop.core.protection_log import log_path, read_log, record_export, summarize


def _append_many(folder: str, tag: str, count: int) -> None:
    for i in range(count):
        record_export(Path(folder), 0.05, Path(f"{tag}-{i}-" + "x" * 200 + ".png"), f"{tag}{i}".encode())


def test_records_and_summary(tmp_path):
    assert summarize(tmp_path).count == 0
    record_export(tmp_path, 0.01, tmp_path / "a.png", b"one", when=1_700_000_000)
    record_export(tmp_path, 0.05, tmp_path / "b.png", b"two", when=1_710_000_000)
    records = read_log(tmp_path)
    assert [r["output"] for r in records] == ["a.png", "b.png"]
    assert records[0]["level"] == "invisible" and records[1]["level"] == "balanced"
    assert records[1]["sha256"] == hashlib.sha256(b"two").hexdigest()
    summary = summarize(tmp_path)
    assert summary.sentence() == "You protected 2 images from 2023-11-14 to 2024-03-09."


def test_two_processes_appending_at_once_never_mix_lines(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), tag, 150)) for tag in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    lines = log_path(tmp_path).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300 and len(read_log(tmp_path)) == 300


def test_a_damaged_line_is_skipped_not_fatal(tmp_path):
    record_export(tmp_path, 0.05, tmp_path / "a.png", b"one")
    with open(log_path(tmp_path), "a", encoding="utf-8") as handle:
        handle.write('{"date": "2026-01-0')  # a crash mid-line
    record_export(tmp_path, 0.05, tmp_path / "b.png", b"two")
    assert [r["output"] for r in read_log(tmp_path)] == ["a.png", "b.png"]


def test_every_export_is_logged_with_the_written_files_hash(engine, tmp_path, paintings):
    from gwm_desktop.core.profiles import ProfileStore

    profile = ProfileStore().create("logged")
    items = [p.payload for p in engine.protect_files(paintings[:2], tmp_path / "out", profile, 0.05)]
    records = read_log(profile.folder)
    assert len(records) == 2
    for item, record in zip(items, records, strict=True):
        assert record["output"] == item.output.name
        assert record["sha256"] == hashlib.sha256(item.output.read_bytes()).hexdigest()
        assert record["p"] == 0.05 and record["level"] == "balanced"
    # the app's own throwaway copies (a detector's evaluation) are no export of the artist's
    list(engine.protect_files(paintings[:1], tmp_path / "tmp", profile, 0.05, record=False))
    assert len(read_log(profile.folder)) == 2


def test_an_export_the_log_cannot_record_is_not_left_behind(engine, tmp_path, paintings):
    from gwm_desktop.core.profiles import ProfileStore

    profile = ProfileStore().create("unloggable")
    log_path(profile.folder).mkdir()  # the log cannot be opened for appending
    (item,) = [p.payload for p in engine.protect_files(paintings[:1], tmp_path / "out", profile, 0.05)]
    assert not item.ok and "protection log" in item.error
    assert list((tmp_path / "out").iterdir()) == []


def test_a_file_name_that_is_not_utf8_is_logged_exactly(tmp_path):
    import os

    output = tmp_path / os.fsdecode(b"caf\xe9.png")
    record_export(tmp_path, 0.05, output, b"x")
    assert read_log(tmp_path)[0]["output"] == output.name
