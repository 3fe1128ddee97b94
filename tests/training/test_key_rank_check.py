"""``training.key_rank_check`` on a model without a calibration bank (the shipped one): the key-rank
parts run alone, and say which parts a bank would add."""

import torch

from gwm_desktop.core.keys import message_from_key, texture_signs
from training.evaluate import EVAL_KEY
from training.evidence_file import write_evidence


def signal(message: torch.Tensor) -> torch.Tensor:
    """(64,) evidence of ``message``: its bits and its switched-on textures' matched statistics."""
    return torch.cat([3 * message, 4 * texture_signs(message.view(1, -1))[0] * (message > 0)])


def carrying(message: torch.Tensor, views: int, generator: torch.Generator) -> torch.Tensor:
    """(2 conditions, views, 64) evidence whose bits and matched statistics carry ``message``."""
    return torch.randn(2, views, 64, generator=generator) + signal(message)


def test_the_shipped_model_gets_the_key_rank_parts_without_a_bank(tmp_path, capsys):
    from gwm_desktop.core.engine import default_model_dir
    from gwm_desktop.core.weights import load_model
    from training.key_rank_check import main

    views = load_model(default_model_dir()).detector.view_count
    generator = torch.Generator().manual_seed(3)
    message = message_from_key(EVAL_KEY, 32)
    clean = [torch.randn(2, views, 64, generator=generator) for _ in range(6)]
    marked = {0.05: [carrying(message, views, generator) for _ in range(6)]}
    other = {0.05: [torch.randn(2, views, 64, generator=generator) for _ in range(6)]}
    path = tmp_path / "evidence.safetensors"
    write_evidence(path, clean, marked, other, [0] * 6, ("none", "flip"), {"model": str(default_model_dir())})
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "no calibration bank" in out and "gwm eval --calibrate" in out and "bank threshold" not in out
    shipped_rule = next(line for line in out.splitlines() if line.strip().startswith("rank, joined 0.7"))
    assert "p=0.05 none=100% flip=100%" in shipped_rule          # the key's own exports are found
    assert "3. clean false-positive rate per key: key-rank test (1000 keys) mean" in out
    assert "4. 200 fresh random profile keys, each testing every row" in out and "of 6 rows" in out


def test_fresh_key_flags_decide_as_the_scanner_does_for_each_key():
    """Part 4 tests every key at once; each key's decisions are the scanner's own test's (``KeyRankTest``)."""
    from gwm_desktop.core.engine import default_model_dir
    from gwm_desktop.core.key_rank import KeyRankTest, reading_groups
    from gwm_desktop.core.keys import random_messages
    from gwm_desktop.core.random_keys import MessageTable, null_messages
    from gwm_desktop.core.weights import load_model
    from training.key_rank_check import fresh_key_flags

    detector = load_model(default_model_dir()).detector
    views = detector.view_count
    generator = torch.Generator().manual_seed(5)
    keys = random_messages(6, 32, generator).float()
    # rows from none to much of the first key's signal, so that some are flagged and some not
    rows = torch.randn(12, views, 64, generator=generator) + torch.linspace(0, 0.6, 12).view(-1, 1, 1) * signal(keys[0])
    nulls = null_messages(torch.zeros(32), 99)
    found = fresh_key_flags(rows, MessageTable.of(keys), MessageTable.of(nulls.float()),
                            reading_groups(detector, views))
    expected = torch.stack([KeyRankTest(detector, key, 99).p_values(rows) <= 0.01 for key in keys], dim=1)
    assert torch.equal(found, expected)
    assert 0 < int(found[:, 0].sum()) < len(rows)


def test_two_way_interval_contains_the_mean_and_widens_with_a_shared_key():
    from training.key_rank_check import two_way_interval

    generator = torch.Generator().manual_seed(1)
    spread = torch.rand(300, 50, generator=generator) < 0.01
    low, high = two_way_interval(spread)
    assert low <= spread.float().mean() <= high
    one_key = torch.zeros(300, 50, dtype=torch.bool)
    one_key[:150, 0] = True                   # the same share flagged, all by one key
    low_one, high_one = two_way_interval(one_key)
    assert high_one - low_one > 2 * (high - low)
