"""The evidence report: HTML and JSON beside it, with what a reader needs and never the key."""

from __future__ import annotations

import json

import numpy as np

from gwm_desktop.core.evidence_report import key_fingerprint, write_evidence_report
from gwm_desktop.core.key_rank import one_group
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.profiles import ProfileStore
from gwm_desktop.core.protection_log import record_export
from gwm_desktop.core.verdict import set_verdict


def test_report_states_the_test_and_never_shows_the_key(tmp_path, model_dir, paintings):
    from gwm_desktop.core.weights import read_manifest

    profile = ProfileStore().create("artist")
    record_export(profile.folder, 0.05, tmp_path / "a.png", b"a", when=1_700_000_000)
    record_export(profile.folder, 0.05, tmp_path / "b.png", b"b", when=1_700_100_000)
    evidence = np.random.default_rng(0).normal(0, 1.5, (2, 2, 64))
    result = set_verdict(evidence, message_from_key(profile.key, 32), one_group(2), null_keys=999,
                         paths=paintings[:2])
    json_path = write_evidence_report(result, profile, read_manifest(model_dir), tmp_path / "ev.html")
    page = (tmp_path / "ev.html").read_text(encoding="utf-8")
    facts = json.loads(json_path.read_text(encoding="utf-8"))
    assert json_path == tmp_path / "ev.json"
    assert facts["verdict"]["n"] == 2 and facts["verdict"]["p_value"] == result.p_value
    assert "You protected 2 images from 2023-11-14 to 2023-11-16." in page
    assert page.count("data:image/jpeg;base64,") == 2  # a thumbnail per image
    assert facts["key_fingerprint"] in page and key_fingerprint(profile.key) == facts["key_fingerprint"]
    assert profile.key.hex() not in page and profile.key.hex() not in json_path.read_text()
    assert "proof" not in page.lower() and "What it assumes" in page
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp files left


def test_model_version_tells_the_same_weights_read_another_way_apart():
    from gwm_desktop.core.evidence_report import model_version

    manifest = {"format": "gwm-model-v1", "files": {"model.safetensors": "ab" * 32},
                "architecture": {"registration_peaks": 3}}
    wider = {**manifest, "architecture": {"registration_peaks": 16}}
    assert "weights sha256 abababababab" in model_version(manifest)
    assert model_version(manifest) != model_version(wider)
