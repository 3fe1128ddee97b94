"""`gwm verdict` (SPEC section 5): one JSON object, exit 0 either way, bad files skipped one line each."""

import json

import pytest

from gwm_desktop.cli.main import main


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("GWM_THREADS", "1")


def test_verdict_on_protected_images_and_on_clean_ones(tmp_path, capsys, paintings):
    out = tmp_path / "protected"
    assert main(["protect", *map(str, paintings[:8]), "--out", str(out), "--format", "png"]) == 0
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"garbage")
    capsys.readouterr()
    report = tmp_path / "evidence.html"
    assert main(["verdict", str(out), str(bad), "--json", "--null-keys", "2000", "--report", str(report)]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)  # exactly one object
    assert {"n", "p_value", "verdict", "alpha"} <= set(record)
    assert record["n"] == 8 and record["verdict"] is True and record["p_value"] == 1 / 2001  # no random key as high
    assert record["alpha"] == 0.001
    assert [line for line in captured.err.splitlines() if "broken.jpg" in line] == [
        f"gwm: skipped {bad}: " + record["errors"][0]["error"]]
    facts = json.loads(report.with_suffix(".json").read_text())
    assert facts["protection_log"]["count"] == 8 and "8 images" in report.read_text()

    assert main(["verdict", *map(str, paintings[8:14]), "--json", "--null-keys", "2000"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["verdict"] is False and clean["p_value"] > 0.001
    assert clean["headline"].startswith("No evidence") or clean["headline"].startswith("Weak evidence")


def test_verdict_errors_are_one_clear_line(tmp_path, capsys, paintings):
    assert main(["profile", "create", "default"]) == 0
    assert main(["verdict", str(paintings[0]), "--alpha", "2"]) == 2
    assert "--alpha must be between 0 and 1" in capsys.readouterr().err
    assert main(["verdict", str(tmp_path / "none.png")]) == 2
    assert "no readable images" in capsys.readouterr().err
    assert main(["verdict", str(paintings[0]), "--report", str(tmp_path / "r.csv")]) == 2
    assert main(["verdict", str(paintings[0]), "--null-keys", "2000000000"]) == 2
    assert "--null-keys must be between 99 and 2,000,000" in capsys.readouterr().err
    assert main(["verdict", str(paintings[0]), "--alpha", "0.0001", "--null-keys", "999"]) == 2
    assert "needs at least 9,999 random keys" in capsys.readouterr().err


def test_the_verdict_is_printed_even_when_its_report_cannot_be_written(tmp_path, capsys, paintings):
    import os

    assert main(["profile", "create", "default"]) == 0
    odd = tmp_path / "in" / os.fsdecode(b"art\xff.jpg")
    odd.parent.mkdir()
    odd.write_bytes(paintings[0].read_bytes())
    assert main(["verdict", str(odd.parent), "--json", "--null-keys", "999",
                 "--report", str(tmp_path / "ev.html")]) == 0  # a name that is not UTF-8 is written
    assert "\ufffd" in (tmp_path / "ev.html").read_text(encoding="utf-8")
    capsys.readouterr()
    (tmp_path / "taken.json").mkdir()  # the HTML is written, then its JSON cannot be: neither is left
    assert main(["verdict", str(odd.parent), "--json", "--null-keys", "999",
                 "--report", str(tmp_path / "taken.html")]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n"] == 1 and "cannot write the report" in captured.err
    assert not (tmp_path / "taken.html").exists()
