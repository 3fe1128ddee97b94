"""The one atomic write: whole files or none, never a clobbered name, no temp file left on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gwm_desktop.core import atomic
from gwm_desktop.core.atomic import write_atomic, write_new
from gwm_desktop.core.image_io import output_names

ROOT = Path(__file__).resolve().parents[2]


def test_write_atomic_replaces_whole_files_with_default_permissions(tmp_path: Path) -> None:
    target = tmp_path / "ポートレート_é.png"
    write_atomic(target, b"first")
    write_atomic(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's 0600
    secret = write_atomic(tmp_path / "key.bin", lambda temp: temp.write_bytes(b"k" * 32), private=True)
    assert secret.read_bytes() == b"k" * 32 and secret.stat().st_mode & 0o777 == 0o600


def test_a_name_at_the_length_limit_can_be_written(tmp_path: Path) -> None:
    longest = "ポ" * 85  # 255 bytes in UTF-8: the most a file name may hold
    assert write_atomic(tmp_path / longest, b"x").read_bytes() == b"x"
    assert write_new([tmp_path / longest, tmp_path / ("ポ" * 84)], b"y") == tmp_path / ("ポ" * 84)


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
@pytest.mark.parametrize("existing", [None, b"previous export"])
def test_interrupted_write_leaves_no_partial_or_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: type[BaseException], existing: bytes | None
) -> None:
    target = tmp_path / "out.png"
    if existing is not None:
        target.write_bytes(existing)

    def fail(*args: object) -> None:
        raise failure("interrupted mid-write")

    monkeypatch.setattr(atomic.os, "fsync" if failure is KeyboardInterrupt else "replace", fail)
    with pytest.raises(failure):
        write_atomic(target, b"x" * 100_000)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ([target.name] if existing is not None else [])
    if existing is not None:
        assert target.read_bytes() == existing


def test_write_new_never_overwrites_and_takes_the_next_free_name(tmp_path: Path) -> None:
    first = tmp_path / "art.png"
    first.write_bytes(b"earlier export")
    names = [first, tmp_path / "art (1).png", tmp_path / "art (2).png"]
    assert write_new(names, b"mine") == tmp_path / "art (1).png"
    assert first.read_bytes() == b"earlier export"
    assert write_new(names, b"again") == tmp_path / "art (2).png"
    with pytest.raises(FileExistsError):
        write_new(names, b"no room")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art (1).png", "art (2).png", "art.png"]


def test_a_name_taken_by_another_process_mid_write_is_not_clobbered(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The race of issue 15: the name was free when planned, another run writes it before our rename."""
    source = tmp_path / "in" / "art.png"
    out = tmp_path / "out"
    out.mkdir()
    planned = output_names(source, out, "PNG")
    real_write_temp = atomic._write_temp

    def other_process_wins(path: Path, content: atomic.Content, private: bool) -> Path:
        temp = real_write_temp(path, content, private)
        if not (out / "art.png").exists():
            (out / "art.png").write_bytes(b"bob's watermark")
        return temp

    monkeypatch.setattr(atomic, "_write_temp", other_process_wins)
    assert write_new(planned, b"alice's watermark") == out / "art (1).png"
    assert (out / "art.png").read_bytes() == b"bob's watermark"
    assert (out / "art (1).png").read_bytes() == b"alice's watermark"
    assert sorted(p.name for p in out.iterdir()) == ["art (1).png", "art.png"]


def test_without_hard_links_the_name_is_reserved_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # as on some FAT/exFAT and network disks

    monkeypatch.setattr(atomic.os, "link", no_links)
    (tmp_path / "a.png").write_bytes(b"theirs")
    assert write_new([tmp_path / "a.png", tmp_path / "a (1).png"], b"ours") == tmp_path / "a (1).png"
    assert (tmp_path / "a.png").read_bytes() == b"theirs" and (tmp_path / "a (1).png").read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a (1).png", "a.png"]


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_during_a_write_leaves_no_temp_file(tmp_path: Path) -> None:
    """A real process killed by SIGTERM in the middle of writing a file: no .tmp, no partial target."""
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from gwm_desktop.core.atomic import Terminated, install_sigterm_cleanup, write_atomic
install_sigterm_cleanup()
def slow(temp):
    temp.write_bytes(b"half")
    print("writing", flush=True)
    time.sleep(30)
try:
    write_atomic(sys.argv[1], slow)
except Terminated:
    sys.exit(143)
"""
    target = tmp_path / "report.csv"
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "writing"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"]  # the write really was under way
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert process.wait(timeout=20) == 143 and time.monotonic() - started < 20
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_the_gui_handler_removes_temp_files_then_quits_instead_of_raising(tmp_path: Path) -> None:
    quit_called = []
    target = tmp_path / "export.png"

    def write_then_get_terminated(temp: Path) -> None:
        temp.write_bytes(b"half")
        previous = atomic.install_sigterm_cleanup(then=lambda: quit_called.append(True))
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler runs here, in the main thread; a writer thread would go on
            assert quit_called and not temp.exists()
        finally:
            atomic.restore_sigterm(previous)
        raise OSError("the write noticed its temp file is gone")

    with pytest.raises(OSError, match="temp file is gone"):
        write_atomic(target, write_then_get_terminated)
    assert list(tmp_path.iterdir()) == []
