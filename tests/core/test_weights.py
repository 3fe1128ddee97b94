import pytest
import torch

from gwm_desktop.core.models import DEFAULT_BITS, WatermarkDetector, WatermarkGenerator
from gwm_desktop.core.weights import WEIGHTS_FILE, ModelIntegrityError, load_model, save_model


def test_round_trip_and_tamper_detection(tmp_path):
    g, d = WatermarkGenerator(working_size=64, tile=32), WatermarkDetector(working_size=64, spectrum_crop=24)
    manifest = save_model(tmp_path, g, d, {"metrics": {"auc": 1.0}}, calibration={"clean_bits": torch.zeros(4, DEFAULT_BITS)})
    assert manifest["files"][WEIGHTS_FILE]
    bundle = load_model(tmp_path)
    assert torch.equal(bundle.generator.patterns, g.patterns)
    assert bundle.detector.working_size == 64 and "clean_bits" in bundle.calibration
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match the manifest"):
        load_model(tmp_path)


def test_shipped_model_verifies(model_dir):
    bundle = load_model(model_dir)
    assert bundle.manifest["training"]["command"].startswith("gwm train phase1")
    assert "clean_bits" in bundle.calibration and "other_bits" in bundle.calibration
