"""Model folders: ``model.safetensors`` + ``manifest.json`` (sha256, config, command, metrics).

A model folder is what ships in ``resources/models/default`` and what training writes. Loading
verifies the sha256 recorded in the manifest, so a damaged or swapped file is refused, not used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.generator import WatermarkGenerator
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.textures import FIRST_BAND

WEIGHTS_FILE = "model.safetensors"
CALIBRATION_FILE = "calibration.safetensors"
MANIFEST_FILE = "manifest.json"


class ModelIntegrityError(RuntimeError):
    """The weights on disk do not match their manifest."""


@dataclass
class ModelBundle:
    generator: WatermarkGenerator
    detector: WatermarkDetector
    manifest: dict[str, Any]
    folder: Path
    calibration: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_bits(self) -> int:
        return self.detector.n_bits

    @property
    def key_independent(self) -> bool:
        """Whether the detector never learned one key's watermark (Phase 1 trains on random keys), so
        a profile's key is exchangeable with random ones (``key_rank``); a Phase 2 detector was fine-tuned
        on its profile's key."""
        return self.manifest.get("training", {}).get("phase") != 2


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    cpu = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    write_atomic(path, lambda temp: save_file(cpu, str(temp)))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """The manifest as the loader reads it (sorted keys), written atomically."""
    write_atomic(folder / MANIFEST_FILE, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def architecture_config(generator: WatermarkGenerator, detector: WatermarkDetector) -> dict[str, Any]:
    return {
        "n_bits": generator.n_bits,
        "tile": generator.tile,
        "base_amplitude": generator.base_amplitude,
        "generator_width": generator.amplitude_net[0].out_channels,
        "detector_widths": [detector.features[i].out_channels for i in (0, 2, 6)],
        "spectrum_crop": detector.spectrum_crop,
        "working_size": detector.working_size,
        "signed": generator.signed,
        "matched_filter": detector.matched_filter,
        "isotropic": generator.isotropic,
        "registration_peaks": detector.registration_peaks,
        "band": list(generator.band),
    }


def build_networks(config: dict[str, Any]) -> tuple[WatermarkGenerator, WatermarkDetector]:
    band = tuple(config.get("band", FIRST_BAND))  # a manifest without one predates the setting
    generator = WatermarkGenerator(n_bits=config["n_bits"], tile=config["tile"], width=config["generator_width"],
                                   base_amplitude=config["base_amplitude"], working_size=config["working_size"],
                                   signed=config.get("signed", False), isotropic=config.get("isotropic", False),
                                   band=band)
    detector = WatermarkDetector(n_bits=config["n_bits"], widths=tuple(config["detector_widths"]),
                                 spectrum_crop=config["spectrum_crop"], working_size=config["working_size"],
                                 matched_filter=config.get("matched_filter", False), tile=config["tile"],
                                 isotropic=config.get("isotropic", False),
                                 registration_peaks=config.get("registration_peaks", 0), band=band)
    return generator, detector


def save_model(folder: Path, generator: WatermarkGenerator, detector: WatermarkDetector,
               manifest_extra: dict[str, Any] | None = None,
               calibration: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Write weights (and optional calibration bank) atomically, then the manifest that vouches for them."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    tensors.update({f"detector.{k}": v for k, v in detector.state_dict().items()})
    _save_tensors(tensors, folder / WEIGHTS_FILE)
    files = {WEIGHTS_FILE: sha256_file(folder / WEIGHTS_FILE)}
    if calibration:
        _save_tensors(calibration, folder / CALIBRATION_FILE)
        files[CALIBRATION_FILE] = sha256_file(folder / CALIBRATION_FILE)
    manifest: dict[str, Any] = {"format": "gwm-model-v1", "architecture": architecture_config(generator, detector)}
    manifest.update(manifest_extra or {})
    manifest["files"] = files
    write_manifest(folder, manifest)
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed manifest; ModelIntegrityError if it is not one the loader can trust."""
    path = folder / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST_FILE} in model folder {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelIntegrityError(f"{path} is damaged: not JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise ModelIntegrityError(f"{path} is damaged: not a manifest")
    return manifest


def _checked_files(manifest: dict[str, Any], folder: Path) -> dict[str, str]:
    """The manifest's {file: sha256}; it must vouch for the weights (an empty list would verify nothing)."""
    files = manifest.get("files")
    if not isinstance(files, dict) or WEIGHTS_FILE not in files \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ModelIntegrityError(f"{folder / MANIFEST_FILE} lists no sha256 for {WEIGHTS_FILE}: "
                                  "the weights cannot be verified, so they are not used")
    if not isinstance(manifest.get("architecture"), dict):
        raise ModelIntegrityError(f"{folder / MANIFEST_FILE} has no 'architecture': this is not a complete model")
    return files


def load_model(folder: Path, device: torch.device | str = "cpu", verify: bool = True) -> ModelBundle:
    """Load and verify a model folder; networks in eval mode on ``device``."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    files = _checked_files(manifest, folder)
    if verify:
        for name, expected in files.items():
            if Path(name).name != name:  # a manifest names files in its own folder, nowhere else
                raise ModelIntegrityError(f"{folder / MANIFEST_FILE} names a file outside the model folder: {name!r}")
            actual = sha256_file(folder / name)
            if actual != expected:
                raise ModelIntegrityError(f"{folder / name}: sha256 {actual[:12]}... does not match the manifest "
                                          f"({expected[:12]}...); the file is damaged or was replaced")
    try:
        generator, detector = build_networks(manifest["architecture"])
        tensors = load_file(str(folder / WEIGHTS_FILE))
        generator.load_state_dict({k[len("generator."):]: v for k, v in tensors.items()
                                   if k.startswith("generator.")})
        detector.load_state_dict({k[len("detector."):]: v for k, v in tensors.items() if k.startswith("detector.")})
    except (KeyError, TypeError) as error:
        raise ModelIntegrityError(f"{folder / MANIFEST_FILE}: the architecture does not describe these weights "
                                  f"({type(error).__name__}: {error})") from None
    calibration = load_file(str(folder / CALIBRATION_FILE)) if CALIBRATION_FILE in files else {}
    generator.eval().to(device)
    detector.eval().to(device)
    return ModelBundle(generator, detector, manifest, folder, calibration)
