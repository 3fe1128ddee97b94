"""Give a model the matched filter: G adds its textures with key-derived signs, D correlates with them.

    python -m training.matched_filter --model runs/tune_v2/model --out runs/matched_v2/model

G's textures and D's weights are kept as they are: the signs change no texture's power spectrum, which
is all D's CNN reads, so no retraining is needed. D gets a copy of G's textures (the matched filter's
templates), and its scan-time evidence gains one statistic per texture (``WatermarkDetector.coherent``).
The calibration bank is dropped: it held the old evidence. A key-independent detector's scan needs
none (the key-rank test); the tools that compare with a bank's threshold need ``gwm eval
--calibrate`` on the new folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gwm_desktop.core.generator import WatermarkGenerator
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.weights import architecture_config, build_networks, load_model, save_model


def with_matched_filter(generator: WatermarkGenerator, detector: WatermarkDetector
                        ) -> tuple[WatermarkGenerator, WatermarkDetector]:
    """Copies of G (signed) and D (matched filter, G's textures adopted) with the same weights."""
    config = dict(architecture_config(generator, detector), signed=True, matched_filter=True)
    signed, matched = build_networks(config)
    signed.load_state_dict(generator.state_dict())
    matched.load_state_dict(detector.state_dict(), strict=False)  # all but the templates, when D had none
    matched.adopt_templates(signed)
    return signed.eval(), matched.eval()


def enable_matched_filter(model: Path, out: Path) -> dict:
    bundle = load_model(model)
    generator, detector = with_matched_filter(bundle.generator, bundle.detector)
    extra = {k: v for k, v in bundle.manifest.items()
             if k not in ("format", "architecture", "files", "calibration", "metrics")}
    extra["matched_filter"] = {"from": str(model), "command": "python -m training.matched_filter " + " ".join(sys.argv[1:])}
    return save_model(out, generator, detector, manifest_extra=extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder to start from")
    parser.add_argument("--out", type=Path, required=True, help="new model folder (may not be --model)")
    args = parser.parse_args(argv)
    if args.out.resolve() == args.model.resolve():
        parser.error("--out must differ from --model (the original stays as it was)")
    enable_matched_filter(args.model, args.out)
    print(f"wrote {args.out}; evaluate it with gwm eval --model {args.out} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
