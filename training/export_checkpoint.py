"""Turn a Phase 1 checkpoint into a model folder (weights + manifest), e.g. to ship a run's best step::

    python -m training.export_checkpoint runs/phase1_main/checkpoints/step_002000.pt resources/models/default
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import torch

from training.phase1 import Phase1Trainer, command_line
from training.phase1_config import Phase1Config, config_band, saved_band


def export_checkpoint(checkpoint: Path, folder: Path, metrics: dict | None = None) -> dict:
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    known = {f.name for f in fields(Phase1Config)}
    config = Phase1Config(**{k: v for k, v in state["config"].items() if k in known})
    config.band_low, config.band_high = saved_band(state["config"])
    config.resume = str(checkpoint)
    config.device = "cpu"
    trainer = Phase1Trainer.__new__(Phase1Trainer)  # networks only: no data, no LPIPS
    from gwm_desktop.core.models import networks_for_size

    trainer.config = config
    trainer.step = state["step"]
    trainer.generator, trainer.detector = networks_for_size(config.working_size, config.n_bits, config.tile,
                                                            isotropic=config.frame == "isotropic", band=config_band(config))
    if "templates" in state["detector"]:  # a run fine-tuned from a model with the matched filter
        from gwm_desktop.core.weights import architecture_config, build_networks

        trainer.generator, trainer.detector = build_networks(
            dict(architecture_config(trainer.generator, trainer.detector), signed=True, matched_filter=True))
    trainer.generator.load_state_dict(state["generator"])
    trainer.detector.load_state_dict(state["detector"])
    argv = []
    for key, value in state["config"].items():
        if key in ("resume", "init_from") or value is None or value is False:
            continue
        for item in value if isinstance(value, list) else [value]:
            argv += [f"--{key.replace('_', '-')}", str(item)]
    return trainer.export(folder, command_line(argv), metrics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    manifest = export_checkpoint(args.checkpoint, args.folder)
    print(f"wrote {args.folder} ({manifest['training']['steps_done']} steps)")


if __name__ == "__main__":
    main()
