"""Images protected with an earlier default model are still found, with that model (README)."""

import json

import pytest

from gwm_desktop.resources import EARLIER_MODELS, earlier_model_dir, resource_path
from tests.fixtures.cli_run import run_gwm

SAMPLES = resource_path("samples")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EARLIER_MODELS))
def test_earlier_exports_are_found_by_their_model_not_by_the_new_one(tmp_path, capsys, name):
    earlier = earlier_model_dir(name)
    assert earlier is not None, f"the build ships resources/models/{name}"
    out = tmp_path / "old_exports"
    code, text = run_gwm(["protect", SAMPLES, "--out", out, "--model", earlier], capsys)
    assert code == 0, text
    code, text = run_gwm(["scan", out, "--model", earlier, "--json"], capsys)
    assert code == 0, text
    old = rows(text)
    assert old and all(row["flagged"] for row in old)
    code, text = run_gwm(["scan", out, "--json"], capsys)   # the new default model: another frame
    assert code == 0, text
    assert not any(row["flagged"] for row in rows(text))
    # --earlier NAME: the same as naming the folder, and the report says which watermark it was
    code, text = run_gwm(["scan", out, "--earlier", name, "--json", "--report", tmp_path / "r.html"], capsys)
    assert code == 0, text
    assert rows(text) == old
    assert EARLIER_MODELS[name].description in (tmp_path / "r.html").read_text()
    code, text = run_gwm(["verdict", out, "--earlier", name, "--json"], capsys)
    assert code == 0, text
    assert json.loads(next(line for line in text.splitlines() if line.startswith("{")))["verdict"]


def rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
