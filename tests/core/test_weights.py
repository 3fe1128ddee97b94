import json

import pytest
import torch

from gwm_desktop.core.generator import DEFAULT_BITS, WatermarkGenerator
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.weights import MANIFEST_FILE, WEIGHTS_FILE, ModelIntegrityError, load_model, save_model


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
    # key-independent: the scanner ranks the key among random ones and reads no bank, so none ships
    assert bundle.key_independent and bundle.calibration == {}
    assert "calibration.safetensors" not in bundle.manifest["files"]


def _saved(tmp_path):
    g, d = WatermarkGenerator(working_size=64, tile=32), WatermarkDetector(working_size=64, spectrum_crop=24)
    save_model(tmp_path, g, d)
    return json.loads((tmp_path / MANIFEST_FILE).read_text())


@pytest.mark.parametrize("damage, reason, corrupt_weights", [
    (lambda m: m.pop("files"), "cannot be verified", True),
    (lambda m: m.update(files={}), "cannot be verified", True),
    (lambda m: m.update(files=[]), "cannot be verified", True),
    (lambda m: m.pop("architecture"), "no 'architecture'", False),
    (lambda m: m["architecture"].pop("n_bits"), "does not describe these weights", False),
    (lambda m: m["files"].update({"../../etc/passwd": "0" * 64}), "outside the model folder", False),
])
def test_a_manifest_that_cannot_vouch_for_its_weights_is_refused(tmp_path, damage, reason, corrupt_weights):
    manifest = _saved(tmp_path)
    damage(manifest)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    if corrupt_weights:  # corrupted weights must never load just because nothing checks them
        data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
        data[-1] ^= 0xFF
        (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=reason):
        load_model(tmp_path)


@pytest.mark.parametrize("text", ["not json", "[]", "{\"files\": "])
def test_an_unreadable_manifest_is_a_clear_error(tmp_path, text):
    _saved(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(text)
    with pytest.raises(ModelIntegrityError, match="damaged"):
        load_model(tmp_path)


def test_each_shipped_model_reads_with_its_own_band():
    # A manifest that names no band predates the setting: its model was trained at the first band.
    from gwm_desktop.core.textures import FIRST_BAND, PATTERN_BAND
    from gwm_desktop.resources import earlier_model_dir, resource_path

    assert load_model(resource_path("models", "default")).generator.band == PATTERN_BAND
    higher = load_model(earlier_model_dir("2026-12-07"))   # the band's manifest entry, not the default's
    assert higher.generator.band == higher.detector.band == (6 / 128, 15 / 128) != PATTERN_BAND
    earlier = load_model(earlier_model_dir("2026-12-02"))
    assert "band" not in earlier.manifest["architecture"]
    assert earlier.generator.band == earlier.detector.band == FIRST_BAND
