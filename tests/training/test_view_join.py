"""``training.view_join``: the join rules, their bank thresholds, and the evidence files gwm eval writes."""

import pytest
import torch

from gwm_desktop.core.detect import profile_threshold
from gwm_desktop.core.keys import message_from_key
from training.evaluate import EVAL_KEY
from training.evidence_file import read_evidence, write_evidence
from training.view_join import bank_threshold, reading_agreements, reading_groups, rules_for


def synthetic_calibration(rows: int = 400, views: int = 28, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(rows, views, 64, generator=generator) * (1 + i)
            for i, name in enumerate(("clean_bits", "other_bits", "faint_other_bits"))}


def test_groups_follow_the_scanner_layout():
    assert reading_groups(28) == [list(range(0, 5)), list(range(5, 10)), list(range(10, 15)), list(range(15, 28))]
    assert reading_groups(15) == [list(range(0, 5)), list(range(5, 10)), list(range(10, 15))]


def test_best_rule_is_the_scanner_threshold_and_every_rule_holds_each_bank_to_the_rate():
    calibration = synthetic_calibration()
    message = message_from_key(EVAL_KEY, 32)
    banks = {name: reading_agreements(bits, message) for name, bits in calibration.items()}
    rules = rules_for(banks)
    assert abs(bank_threshold(rules["best"], banks) - profile_threshold(calibration, message, 0.01)) < 1e-6
    for rule in rules.values():
        threshold = bank_threshold(rule, banks)
        for bank in banks.values():
            assert (rule(bank) > threshold).float().mean() <= 0.01
    # the unregistered rule never reads the phases' readings
    lifted = {name: bank.clone() for name, bank in banks.items()}
    lifted["clean_bits"][:, 15:] += 10
    assert torch.equal(rules_for(lifted)["unregistered"](lifted["clean_bits"]), rules["unregistered"](banks["clean_bits"]))


def test_reading_agreements_are_the_detectors_at_the_shipped_constants():
    from gwm_desktop.core.models import WatermarkDetector

    evidence = torch.randn(3, 28, 64) * 3
    message = message_from_key(EVAL_KEY, 32)
    expected = WatermarkDetector.agreement(evidence, message.expand(3, 28, -1))
    assert torch.allclose(reading_agreements(evidence, message), expected, atol=1e-6)
    assert not torch.allclose(reading_agreements(evidence, message, 0.8, 3.0), expected, atol=1e-3)


def test_evidence_file_round_trip(tmp_path):
    clean = [torch.randn(2, 28, 64) for _ in range(3)]
    marked = {p: [torch.randn(2, 28, 64) for _ in range(3)] for p in (0.01, 0.05)}
    other = {p: [torch.randn(2, 28, 64) for _ in range(3)] for p in (0.01, 0.05)}
    path = tmp_path / "evidence.safetensors"
    write_evidence(path, clean, marked, other, [1, 2, 3], ("none", "flip"), {"model": "m"})
    tensors, metadata = read_evidence(path)
    assert metadata["conditions"] == "none,flip" and metadata["levels"] == "0.01,0.05" and metadata["model"] == "m"
    assert tensors["clean"].shape == (3, 2, 28, 64) and tensors["other_key_index"].tolist() == [1, 2, 3]
    assert torch.allclose(tensors["marked@0.05"], torch.stack(marked[0.05]), atol=1e-2)
    assert not list(tmp_path.glob("*.tmp*"))


def test_the_table_reads_an_evidence_file_against_a_models_bank(tmp_path, capsys):
    """The shipped model has no bank (the scan needs none): the tool says how to write one, and reads
    a copy that has one."""
    from gwm_desktop.core.engine import default_model_dir
    from gwm_desktop.core.weights import load_model, save_model
    from training.view_join import main

    shipped = load_model(default_model_dir())
    views = shipped.detector.view_count
    generator = torch.Generator().manual_seed(1)
    clean = [torch.randn(2, views, 64, generator=generator) for _ in range(4)]
    marked = {0.05: [torch.randn(2, views, 64, generator=generator) + 3 for _ in range(4)]}
    other = {0.05: [torch.randn(2, views, 64, generator=generator) for _ in range(4)]}
    path = tmp_path / "evidence.safetensors"
    write_evidence(path, clean, marked, other, [1, 2, 3, 0], ("none", "flip"), {"model": str(default_model_dir())})
    with pytest.raises(SystemExit, match="no calibration bank.*gwm eval --calibrate"):
        main([str(path)])
    save_model(tmp_path / "banked", shipped.generator, shipped.detector, {"training": shipped.manifest["training"]},
               calibration=synthetic_calibration(views=views))
    assert main([str(path), "--model", str(tmp_path / "banked"), "--matched-weight", "0.75", "--matched-present", "3"]) == 0
    out = capsys.readouterr().out
    for rule in ("best", "unregistered", "standardised"):
        assert f"  {rule} (threshold" in out
    assert "key 3 (" in out and "p=0.05: found % none=" in out
