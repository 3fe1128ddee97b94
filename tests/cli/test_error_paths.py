"""Every way a careful or hostile user can make `gwm` fail ends in one line, never a traceback.

Each case sets up its trap, runs the CLI in-process as a shell would (an exception escaping `main`
is printed as the interpreter prints it, so it shows up as "Traceback"), and checks the exit code,
the message, and that nothing was written that should not be. The last assertion greps the whole
transcript of every case for "Traceback".
"""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gwm_desktop.core.profiles import ProfileStore
from tests.fixtures.cli_run import run_gwm

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "a passphrase for tests"


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, model_dir):
    monkeypatch.setenv("GWM_THREADS", "1")
    monkeypatch.delenv("GWM_PASSPHRASE", raising=False)


def picture(path: Path, seed: int = 0, size: int = 48) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def model_copy(tmp: Path, model_dir: Path, change: Callable[[dict], None]) -> Path:
    folder = tmp / "model"
    shutil.copytree(model_dir, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def no_space(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@dataclass
class Case:
    name: str
    setup: Callable[[Path, pytest.MonkeyPatch, Path], list]  # (tmp, monkeypatch, model) -> argv
    code: int
    says: str
    check: Callable[[Path], bool] = lambda _tmp: True  # noqa: E731 - what must (not) exist afterwards


def _protect_into(out: Callable[[Path], Path]) -> Callable[[Path, pytest.MonkeyPatch, Path], list]:
    def setup(tmp: Path, _mp: pytest.MonkeyPatch, _model: Path) -> list:
        (tmp / "afile").write_bytes(b"not a folder")
        return ["protect", picture(tmp / "in" / "a.png"), "--out", out(tmp)]
    return setup


def _damaged_key(tmp: Path, _mp: pytest.MonkeyPatch, _model: Path) -> list:
    (ProfileStore().create("dora").folder / "key.bin").write_bytes(b"")
    return ["protect", picture(tmp / "in" / "a.png"), "--out", tmp / "out", "--profile", "dora"]


def _with_model(change: Callable[[dict], None]) -> Callable[[Path, pytest.MonkeyPatch, Path], list]:
    def setup(tmp: Path, _mp: pytest.MonkeyPatch, model: Path) -> list:
        return ["protect", picture(tmp / "in" / "a.png"), "--out", tmp / "out", "--model",
                model_copy(tmp, model, change)]
    return setup


def _scan_report(report: Callable[[Path], Path], full_disk: bool = False
                 ) -> Callable[[Path, pytest.MonkeyPatch, Path], list]:
    def setup(tmp: Path, mp: pytest.MonkeyPatch, _model: Path) -> list:
        ProfileStore().create("default")
        (tmp / "afile").write_bytes(b"x")
        (tmp / "r.csv").mkdir()
        if full_disk:
            mp.setattr("gwm_desktop.core.reports.write_atomic", no_space)
        return ["scan", picture(tmp / "in" / "a.png"), "--report", report(tmp)]
    return setup


def _export(target: Callable[[Path], Path], env: bool = True, full_disk: bool = False,
            passphrase_file: bool = False) -> Callable[[Path, pytest.MonkeyPatch, Path], list]:
    def setup(tmp: Path, mp: pytest.MonkeyPatch, _model: Path) -> list:
        ProfileStore().create("eve")
        (tmp / "afile").write_bytes(b"x")
        (tmp / "taken.gwmkey").write_bytes(b"someone else's")
        if env:
            mp.setenv("GWM_PASSPHRASE", PASSPHRASE)
        if full_disk:
            mp.setattr("gwm_desktop.core.profiles.write_new", no_space)
        extra = ["--passphrase-file", tmp / "missing.txt"] if passphrase_file else []
        return ["profile", "export", "eve", target(tmp), *extra]
    return setup


def _import(content: bytes | None, env: bool = True) -> Callable[[Path, pytest.MonkeyPatch, Path], list]:
    def setup(tmp: Path, mp: pytest.MonkeyPatch, _model: Path) -> list:
        path = tmp / "backup.gwmkey"
        if content is None:  # a real encrypted backup, opened with the wrong passphrase
            ProfileStore(tmp / "elsewhere").create("fay")
            ProfileStore(tmp / "elsewhere").export("fay", path, "the right passphrase")
        else:
            path.write_bytes(content)
        if env:
            mp.setenv("GWM_PASSPHRASE", PASSPHRASE)
        return ["profile", "import", path]
    return setup


def _import_path(path: str) -> Callable[[Path, pytest.MonkeyPatch, Path], list]:
    return lambda tmp, _mp, _model: ["profile", "import", path]


def _no_outputs(tmp: Path) -> bool:
    return not (tmp / "out").exists() or not any((tmp / "out").iterdir())


def _no_profiles(_tmp: Path) -> bool:
    return ProfileStore().list() == []


def _key(value: object) -> bytes:
    return json.dumps({"format": "gwm-profile-v1", "name": "gil", "key": value}).encode()


CASES = [
    Case("--out is a file", _protect_into(lambda t: t / "afile"), 2, "it is a file"),
    Case("--out cannot be created", _protect_into(lambda t: t / "afile" / "sub"), 2,
         "cannot create the output folder"),
    Case("empty key.bin", _damaged_key, 2, "is damaged", _no_outputs),
    Case("manifest without architecture", _with_model(lambda m: m.pop("architecture")), 2,
         "no 'architecture'", _no_outputs),
    Case("manifest without files", _with_model(lambda m: m.pop("files")), 2, "cannot be verified", _no_outputs),
    Case("report path is a folder", _scan_report(lambda t: t / "r.csv"), 2, "cannot write the report"),
    Case("report folder cannot be made", _scan_report(lambda t: t / "afile" / "r.html"), 2,
         "cannot write the report"),
    Case("report on a full disk", _scan_report(lambda t: t / "r.html", full_disk=True), 2, "No space left"),
    Case("export into a file's path", _export(lambda t: t / "afile" / "eve.gwmkey"), 2, "cannot write"),
    Case("export over an existing file", _export(lambda t: t / "taken.gwmkey"), 2, "already exists",
         lambda t: (t / "taken.gwmkey").read_bytes() == b"someone else's"),
    Case("export on a full disk", _export(lambda t: t / "eve.gwmkey", full_disk=True), 2, "No space left",
         lambda t: not (t / "eve.gwmkey").exists()),
    Case("export without a passphrase", _export(lambda t: t / "eve.gwmkey", env=False), 2,
         "a passphrase is needed", lambda t: not (t / "eve.gwmkey").exists()),
    Case("export with a missing passphrase file", _export(lambda t: t / "eve.gwmkey", passphrase_file=True),
         2, "cannot read the passphrase file"),
    Case("import a JSON list", _import(b"[1, 2, 3]"), 2, "not a GenWatermark profile backup", _no_profiles),
    Case("import a JSON string", _import(b'"gwm-profile-v1"'), 2, "not a GenWatermark", _no_profiles),
    Case("import without a name", _import(b'{"format": "gwm-profile-v1", "key": "AAAA"}'), 2, "no profile name",
         _no_profiles),
    Case("import a non-string name", _import(b'{"format": "gwm-profile-v1", "name": ["x"], "key": "AAAA"}'), 2,
         "no profile name", _no_profiles),
    Case("import a non-string key", _import(_key(12345)), 2, "no key", _no_profiles),
    Case("import a short key", _import(_key(base64.b64encode(b"short").decode())), 2, "not 32", _no_profiles),
    Case("import an endless file", _import_path("/dev/zero"), 2, "over 64 KiB", _no_profiles),
    Case("import a missing file", _import_path("/no/such/backup.gwmkey"), 2, "cannot read", _no_profiles),
    Case("import with the wrong passphrase", _import(None), 2, "wrong passphrase", _no_profiles),
    Case("import encrypted without a passphrase", _import(None, env=False), 2, "a passphrase is needed",
         _no_profiles),
]


def test_every_cli_error_path_is_one_line_and_never_a_traceback(tmp_path, capsys, monkeypatch, model_dir):
    transcript, wrong = [], []
    for index, case in enumerate(CASES):
        if case.name == "import an endless file" and not Path("/dev/zero").exists():
            continue
        tmp = tmp_path / f"case{index}"
        tmp.mkdir()
        with monkeypatch.context() as mp:
            argv = case.setup(tmp, mp, model_dir)
            code, output = run_gwm(argv, capsys)
        transcript.append(f"$ gwm {' '.join(map(str, argv))}\n{output}")
        errors = [line for line in output.splitlines() if line.startswith("gwm: error:")]
        if code != case.code or len(errors) != 1 or case.says not in errors[0] or not case.check(tmp):
            wrong.append(f"{case.name}: exit {code}, output:\n{output}")
        for path in tmp.rglob("*"):
            if path.name.endswith(".tmp"):
                wrong.append(f"{case.name}: left {path}")
        for profile in ProfileStore().list():
            ProfileStore().delete(profile.name)
    assert not wrong, "\n\n".join(wrong)
    assert "Traceback" not in "\n".join(transcript)


def test_a_symlink_loop_or_a_folder_named_like_an_image_fails_alone(tmp_path, capsys):
    art = tmp_path / "art"
    picture(art / "good.png")
    (art / "loop.png").symlink_to(art / "loop.png")
    (art / "ring").symlink_to(art, target_is_directory=True)
    folder_named_png = tmp_path / "x.png"
    folder_named_png.mkdir()
    code, output = run_gwm(["protect", art, folder_named_png, "--out", tmp_path / "out"], capsys)
    assert code == 1 and "Traceback" not in output
    assert f"ok     {art / 'good.png'} -> {tmp_path / 'out' / 'good.png'}" in output
    assert f"FAILED {art / 'loop.png'}: cannot read the file" in output
    assert f"FAILED {folder_named_png}: this is a folder" in output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    code, output = run_gwm(["scan", art, folder_named_png, "--json"], capsys)
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert code == 1 and "Traceback" not in output and len(records) == 3
    assert [r["path"] for r in records if "error" in r] == [str(art / "loop.png"), str(folder_named_png)]


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="those file systems refuse non-UTF-8 names")
def test_a_file_name_that_is_not_utf8_neither_breaks_reports_nor_stops_the_batch(tmp_path, capsys):
    art = tmp_path / "art"
    odd = picture(art / os.fsdecode(b"caf\xe9 \xff.png"), seed=1)
    picture(art / "zz_last.png", seed=2)
    out = tmp_path / "out"
    code, output = run_gwm(["protect", art, "--out", out], capsys)
    assert code == 0 and "Traceback" not in output and len(list(out.iterdir())) == 2
    for report in ("r.csv", "r.html"):
        code, output = run_gwm(["scan", out, "--report", tmp_path / report], capsys)
        assert code == 0 and "Traceback" not in output
        assert "caf\ufffd \ufffd.png" in (tmp_path / report).read_text(encoding="utf-8")
    # A terminal that can only print ASCII, strictly: the batch must still reach the last file.
    env = dict(os.environ, PYTHONIOENCODING="ascii:strict", PYTHONPATH=str(ROOT), GWM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "gwm_desktop.cli.main", "protect", str(art), "--out",
                           str(tmp_path / "out2")], env=env, capture_output=True, timeout=300)
    printed = (done.stdout + done.stderr).decode("ascii", "replace")
    assert done.returncode == 0 and "Traceback" not in printed, printed
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == sorted(p.name for p in out.iterdir())
    assert odd.exists()


def test_in_a_terminal_the_passphrase_is_asked_for_hidden_and_twice_on_export(tmp_path, capsys, monkeypatch):
    from gwm_desktop.cli import profile_cmd

    answers: list[str] = []
    prompts: list[str] = []
    monkeypatch.setattr(profile_cmd.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(profile_cmd.getpass, "getpass", lambda prompt: prompts.append(prompt) or answers.pop(0))
    ProfileStore().create("hal")
    backup = tmp_path / "hal.gwmkey"
    answers[:] = ["first try at it", "second try at it"]
    code, output = run_gwm(["profile", "export", "hal", backup], capsys)
    assert code == 2 and "passphrases differ" in output and not backup.exists()
    answers[:] = ["a good passphrase", "a good passphrase"]
    assert run_gwm(["profile", "export", "hal", backup], capsys)[0] == 0 and len(prompts) == 4
    answers[:] = ["a good passphrase"]
    code, output = run_gwm(["profile", "import", backup, "--name", "hal2"], capsys)
    assert code == 0 and len(prompts) == 5 and ProfileStore().get("hal2").key == ProfileStore().get("hal").key
    assert "a good passphrase" not in output
