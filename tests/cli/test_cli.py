"""The `gwm` contract of SPEC section 5, driven in-process as a user would from a shell."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image

from gwm_desktop.cli.main import main
from gwm_desktop.core.profiles import ProfileStore
from tests.fixtures.bad_batch import make_mixed_batch


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(autouse=True)
def shipped_model(monkeypatch, model_dir):
    monkeypatch.setenv("GWM_THREADS", "1")


def test_profile_commands(tmp_path, capsys, monkeypatch):
    assert main(["profile", "create", "alice"]) == 0
    assert main(["profile", "list"]) == 0
    assert "alice" in capsys.readouterr().out
    backup = tmp_path / "alice.json"
    monkeypatch.setenv("GWM_PASSPHRASE", "alice's long passphrase")
    assert main(["profile", "export", "alice", str(backup)]) == 0
    assert main(["profile", "import", str(backup), "--name", "alice2"]) == 0
    assert "unencrypted" not in capsys.readouterr().err
    monkeypatch.delenv("GWM_PASSPHRASE")
    phrase = tmp_path / "phrase.txt"
    phrase.write_text("alice's long passphrase\n")
    assert main(["profile", "import", str(backup), "--name", "alice3", "--passphrase-file", str(phrase)]) == 0
    assert ProfileStore().get("alice3").key == ProfileStore().get("alice").key
    plain = tmp_path / "old.json"
    plain.write_text(json.dumps({"format": "gwm-profile-v1", "name": "old", "created": 0,
                                 "key": base64.b64encode(bytes(32)).decode()}))
    assert main(["profile", "import", str(plain)]) == 0
    assert "warning:" in capsys.readouterr().err and ProfileStore().get("old").key == bytes(32)
    assert main(["profile", "create", "alice"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_mixed_batch_exports_every_good_file_and_reports_every_bad_one(tmp_path, capsys):
    inputs = tmp_path / "in"
    verdicts = make_mixed_batch(inputs)
    before = digest(inputs)
    out = tmp_path / "out"
    code = main(["protect", str(inputs), "--out", str(out), "--level", "balanced"])
    captured = capsys.readouterr()
    assert code == 1  # some inputs failed
    assert digest(inputs) == before  # originals untouched
    exported = {p.stem for p in out.iterdir()}
    for name, verdict in verdicts.items():
        if verdict == "good":
            assert Path(name).stem in exported, f"{name} was not exported:\n{captured.err}"
        else:
            assert f"FAILED {inputs / name}" in captured.err
            assert Path(name).stem not in exported
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.slow
def test_protect_then_scan_finds_the_watermark_and_json_is_one_object_per_line(tmp_path, capsys, paintings):
    out = tmp_path / "protected"
    assert main(["protect", *map(str, paintings[:3]), "--out", str(out), "--format", "png"]) == 0
    capsys.readouterr()
    report = tmp_path / "report.html"
    assert main(["scan", str(out), *map(str, paintings[3:6]), "--json", "--report", str(report)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {Path(r["path"]).parent for r in lines} == {out, paintings[0].parent}
    for record in lines:
        assert set(record) == {"path", "score", "flagged"} and 0 <= record["score"] <= 1
        assert record["flagged"] == (Path(record["path"]).parent == out)
    assert "watermark found" in report.read_text()


def test_another_profile_does_not_claim_my_images(tmp_path, capsys, paintings):
    out = tmp_path / "protected"
    assert main(["protect", *map(str, paintings[:3]), "--out", str(out)]) == 0
    assert main(["profile", "create", "someone-else"]) == 0
    capsys.readouterr()
    csv_report = tmp_path / "r.csv"
    assert main(["scan", str(out), "--profile", "someone-else", "--json", "--report", str(csv_report)]) == 0
    assert not any(json.loads(line)["flagged"] for line in capsys.readouterr().out.splitlines())
    assert csv_report.read_text().startswith("path,score")


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["protect", str(tmp_path), "--out", str(tmp_path / "o"), "--level", "loud"]) == 2
    assert "unknown level" in capsys.readouterr().err
    assert main(["scan", str(tmp_path), "--fpr", "2"]) == 2
    with pytest.raises(SystemExit):
        main(["train", "phase1", "--help"])
    assert "--warmup-steps" in capsys.readouterr().out


def test_scan_without_a_profile_does_not_invent_a_key(tmp_path, capsys, isolated_home):
    assert main(["scan", str(tmp_path)]) == 2
    assert "gwm profile import" in capsys.readouterr().err
    assert not (isolated_home / "profiles").exists()


def test_an_output_folder_inside_the_input_is_not_protected_again(tmp_path, paintings):
    art = tmp_path / "art"
    art.mkdir()
    for path in paintings[:2]:
        (art / path.name).write_bytes(path.read_bytes())
    out = art / "protected"
    assert main(["protect", str(art), "--out", str(out)]) == 0
    assert main(["protect", str(art), "--out", str(out)]) == 0
    assert len(list(out.iterdir())) == 4  # two runs x two paintings, no watermark-on-watermark copies


def test_flat_colour_art_is_exported_with_a_note_that_its_watermark_can_show(tmp_path, capsys):
    from tests.core.test_flat_colour import emoji_like
    from tests.fixtures.bad_batch import photo_like_u8

    art = tmp_path / "art"
    art.mkdir()
    Image.fromarray(emoji_like(256)).save(art / "emoji.png")
    Image.fromarray(photo_like_u8(192, 256, seed=2)).save(art / "photo.png")
    assert main(["protect", str(art), "--out", str(tmp_path / "out")]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("ok")}
    assert "flat colour" in lines[str(art / "emoji.png")]
    assert "flat colour" not in lines[str(art / "photo.png")]
