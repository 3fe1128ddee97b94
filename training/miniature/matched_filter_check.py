"""Does a personalized model reproduce the watermark *in place*? The matched filter on S vs S_w.

    python -m training.miniature.matched_filter_check runs/miniature_v10 dreambooth [lora ...]

Gives the miniature's watermark detector a matched filter with G's textures (runs since the miniature
exports with key signs have one; the earlier runs' plain G adds every texture with sign +1), and
reports the AUC of S_w vs S on a method's held-out synthesized images for two scores: the linear
correlation with the key's switched-on textures, and ``models.matched_agreement``. No training: a
high AUC means the synthesized images carry the watermark at the position it had in the training
images, which only a model that can place texture by position (3x3 convolutions; SD's UNet has no
positional encoding) can do.

It also reports what the app's scanner would read from the Phase 1 detector and from the method's
Phase 2 detector: their CNN bit agreement alone, and combined with the matched filter as
``WatermarkDetector.agreement`` combines them (one view).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gwm_desktop.core.agreement import matched_agreement
from gwm_desktop.core.keys import message_from_key, texture_signs
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.weights import load_model
from training.matched_filter import with_matched_filter
from training.metrics import auc


def watermark_model(run: Path) -> Path:
    """The run's autoencoder-aware watermark model (``watermark64_<tag>_ae``, whatever its band)."""
    found = sorted(run.glob("watermark64_*_ae*/model"))
    if len(found) != 1:
        raise SystemExit(f"{run}: expected one watermark64_*_ae*/model folder, found {len(found)}")
    return found[0]


def load_folder(folder: Path, size: int) -> torch.Tensor:
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
              for f in sorted(folder.glob("*.png"))]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def scores(run: Path, method: str, variant: str = "marked") -> dict[str, float]:
    phase1 = watermark_model(run)
    bundle = load_model(phase1)
    _, detector = with_matched_filter(bundle.generator, bundle.detector)
    message = message_from_key((run / "subject.key").read_bytes(), bundle.n_bits).view(1, -1)
    signs = texture_signs(message)
    # An earlier run's plain G added every texture with sign +1; times the key's signs (each squared is
    # 1), its statistics read as a signed G's, so the product's own agreement applies to both.
    as_signed = 1 if bundle.generator.signed else signs
    synth = run / "phase2" / "synth" / method
    size = detector.working_size
    with torch.no_grad():
        images = {name: load_folder(synth / name / "heldout", size) for name in ("clean", variant)}
        matched = {name: detector.coherent(x) * as_signed for name, x in images.items()}

    def separation(score: dict[str, torch.Tensor]) -> float:
        return auc(score["clean"].numpy(), score[variant].numpy())

    on = message[0] > 0
    result = {"linear": separation({name: (c * signs)[:, on].sum(-1) for name, c in matched.items()}),
              "agreement": separation({name: matched_agreement(c, message) for name, c in matched.items()}),
              "n": sum(len(x) for x in images.values())}
    detectors = {"phase1": phase1,
                 "phase2": run / "phase2" / ("detectors" if variant == "marked" else "detectors_wf0.25") / method}
    for label, folder in detectors.items():
        if not (folder / "manifest.json").exists():
            continue
        cnn_detector = load_model(folder).detector
        with torch.no_grad():
            bits = {name: cnn_detector(x) for name, x in images.items()}
        result[f"{label}_cnn"] = separation({name: WatermarkDetector.agreement(b, message) for name, b in bits.items()})
        result[f"{label}_combined"] = separation(  # what the scanner computes from both (one view)
            {name: WatermarkDetector.agreement(torch.cat([b, matched[name]], dim=-1), message) for name, b in bits.items()})
    return result


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 2:
        print(__doc__)
        return 2
    run = Path(args[0])
    torch.set_num_threads(1)
    for method in args[1:]:
        for variant in ("marked", "marked_wf0.25"):
            if (run / "phase2" / "synth" / method / variant / "heldout").exists():
                result = scores(run, method, variant)
                line = (f"{method:18} {variant:14} matched-filter AUC: linear {result['linear']:.3f}, "
                        f"agreement {result['agreement']:.3f}")
                for label in ("phase1", "phase2"):
                    if f"{label}_cnn" in result:
                        line += (f"; {label} D: CNN {result[f'{label}_cnn']:.3f}, "
                                 f"with matched filter {result[f'{label}_combined']:.3f}")
                print(line + f" (n = {result['n']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
