"""``gwm eval --conditions``: which distortions an evaluation reports."""

import pytest

from training.evaluate import CONDITIONS, parse_args, parse_conditions


def test_condition_sets_and_lists():
    assert parse_conditions("standard") == CONDITIONS
    assert "bucket512_flip_latent" in parse_conditions("training")
    assert parse_conditions("all")[: len(CONDITIONS)] == CONDITIONS
    assert parse_conditions("none,flip") == ("none", "flip")


def test_unknown_condition_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--data", "x", "--conditions", "flip,sideways"])
    assert "sideways" in capsys.readouterr().err


def test_calibration_bank_stays_standard():
    with pytest.raises(SystemExit):
        parse_args(["--data", "x", "--model", "m", "--calibrate", "--conditions", "training"])
