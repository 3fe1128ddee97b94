"""``training.key_rank_check`` on a model without a calibration bank (the shipped one): the key-rank
parts run alone, and say which parts a bank would add."""

import torch

from gwm_desktop.core.keys import message_from_key, texture_signs
from training.evaluate import EVAL_KEY
from training.evidence_file import write_evidence


def carrying(message: torch.Tensor, views: int, generator: torch.Generator) -> torch.Tensor:
    """(2 conditions, views, 64) evidence whose bits and matched statistics carry ``message``."""
    noise = torch.randn(2, views, 64, generator=generator)
    signal = torch.cat([3 * message, 4 * texture_signs(message.view(1, -1))[0] * (message > 0)])
    return noise + signal


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
    assert "4. 20 fresh random profile keys an image" in out and "of 120" in out
