"""Phase 1's settings: ``Phase1Config``, its command line (``parse_args(argv)`` returns the config) and
the texture band a run or a checkpoint was made with. Kept apart from the trainer (``training.phase1``)
so that what a run is asked to do can be read, parsed and checked without the training loop.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from gwm_desktop.core.generator import DEFAULT_BITS, WORKING_SIZE
from gwm_desktop.core.textures import FIRST_BAND, PATTERN_BAND, band_from_units, band_in_units


@dataclass
class Phase1Config:
    data: list[str] = field(default_factory=list)
    out: str = "runs/phase1"
    steps: int = 2000
    batch_size: int = 8
    lpips_crop: int = 160            # LPIPS measured on a random crop of this size (0: whole image)
    lr_generator: float = 2e-3
    lr_detector: float = 1e-3
    p_min: float = 0.008
    p_max: float = 0.06
    lambda_inv: float = 10.0
    warmup_steps: int = 600          # curriculum: budgets start warmup_factor x larger, distortions phase in
    warmup_factor: float = 10.0
    n_bits: int = DEFAULT_BITS
    tile: int = 0                    # 0: half the working size (128 at 256 px)
    working_size: int = WORKING_SIZE
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    resume: str | None = None        # a checkpoint path or "latest"
    init_from: str | None = None     # a model folder to fine-tune from
    threads: int = 0                 # torch CPU threads; 0 = torch's default
    max_images: int = 0              # 0 = all training-split images
    training_transforms: bool = False  # flips, crops, rotations among the distortions (SPEC section 3)
    latent_autoencoder: str | None = None  # "taef2" (shipped) or a TAEF2 folder: latent round trips in training
    p_latent: float = 0.25           # share of distorted samples that also get the latent round trip
    frame: str = "isotropic"         # "isotropic" (tile from the shorter side, mirror-symmetric) or "stretch"
    band_low: float = band_in_units(PATTERN_BAND)[0]   # a fresh model's texture band, cycles per 128 px of tile
    band_high: float = band_in_units(PATTERN_BAND)[1]
    only_amplitude: bool = False     # fine-tune G's amplitude map alone: textures and detector frozen
    local_ratio: float = 0.0         # > 0: also hinge the worst local LPIPS at this multiple of the budget
    local_window: int = 32           # px of the working frame over which local LPIPS is averaged
    amplitude_cap: float = 0.0       # > 0, with only_amplitude: nowhere stronger than this x the base model's


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gwm train phase1", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Phase1Config()
    parser.add_argument("--data", action="append", required=True,
                        help="image folder (repeatable); only its 'train' split (4/6 of files, by name hash) is used")
    parser.add_argument("--out", default=defaults.out, help="run folder: checkpoints/, log.jsonl, model/")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimisation steps")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lpips-crop", type=int, default=defaults.lpips_crop,
                        help="measure the training LPIPS on a random crop of this size (0: whole image)")
    parser.add_argument("--lr-generator", type=float, default=defaults.lr_generator)
    parser.add_argument("--lr-detector", type=float, default=defaults.lr_detector)
    parser.add_argument("--p-min", type=float, default=defaults.p_min, help="smallest LPIPS budget drawn per image")
    parser.add_argument("--p-max", type=float, default=defaults.p_max, help="largest LPIPS budget drawn per image")
    parser.add_argument("--lambda-inv", type=float, default=defaults.lambda_inv, help="weight of the LPIPS hinge")
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps,
                        help="curriculum length: budgets shrink from warmup-factor x to 1x and distortions phase in")
    parser.add_argument("--warmup-factor", type=float, default=defaults.warmup_factor)
    parser.add_argument("--n-bits", type=int, default=defaults.n_bits, help="message bits derived from a key")
    parser.add_argument("--tile", type=int, default=defaults.tile,
                        help="pattern tile size at the working resolution (0: half the working size)")
    parser.add_argument("--working-size", type=int, default=defaults.working_size,
                        help="working resolution of G and D (256 for the app; smaller for the miniature world)")
    parser.add_argument("--device", default=defaults.device, help="auto | cuda | mps | cpu")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--keep-checkpoints", type=int, default=defaults.keep_checkpoints)
    parser.add_argument("--resume", default=None, help='checkpoint file, or "latest" in --out')
    parser.add_argument("--init-from", default=None, help="model folder to fine-tune from (e.g. resources/models/default)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")
    parser.add_argument("--max-images", type=int, default=0, help="cap on training images (0: all)")
    parser.add_argument("--training-transforms", action="store_true",
                        help="also draw a fine-tuning script's flips, crops and rotations as distortions")
    parser.add_argument("--latent-autoencoder", default=None, metavar="taef2|FOLDER",
                        help="put a latent round trip (the shipped TAEF2, or a TAEF2 folder) after some distortions")
    parser.add_argument("--p-latent", type=float, default=defaults.p_latent,
                        help="share of distorted samples that also get the latent round trip")
    parser.add_argument("--band-low", type=float, default=defaults.band_low,
                        help="lowest texture frequency of a fresh model, cycles per 128 px of tile")
    parser.add_argument("--band-high", type=float, default=defaults.band_high,
                        help="highest texture frequency of a fresh model, cycles per 128 px of tile")
    parser.add_argument("--frame", choices=("isotropic", "stretch"), default=defaults.frame,
                        help="watermark frame of a fresh model: isotropic and mirror-symmetric (new), or the "
                             "earlier square frame stretched to the image")
    parser.add_argument("--local-ratio", type=float, default=defaults.local_ratio,
                        help="also keep the LPIPS of the worst --local-window square under this multiple of the "
                             "budget (0: off). LPIPS is a mean over the image: without it G may gather its "
                             "watermark into one visible patch that the mean forgives")
    parser.add_argument("--local-window", type=int, default=defaults.local_window,
                        help="side in px of the working frame's squares that --local-ratio bounds")
    parser.add_argument("--amplitude-cap", type=float, default=defaults.amplitude_cap,
                        help="with --only-amplitude: hinge the watermark's local strength, both at the budget, at "
                             "this multiple of the base model's (0: off). The base's look was judged by eye; the "
                             "cap lets G take strength from where it is wasted but add little anywhere")
    parser.add_argument("--only-amplitude", action="store_true",
                        help="with --init-from: train only where G puts its watermark (its amplitude map); the "
                             "textures and the detector stay as they are, so scans and earlier exports read the same")
    return parser


def config_band(config: Phase1Config) -> tuple[float, float]:
    """The run's texture band in cycles per pixel, as ``textures.pattern_frequencies`` takes it."""
    if not 0 < config.band_low < config.band_high:
        raise SystemExit(f"--band-low must be positive and below --band-high, got {config.band_low:g}, {config.band_high:g}")
    return band_from_units(config.band_low, config.band_high)


def saved_band(saved_config: dict) -> tuple[float, float]:
    """A checkpoint's band in cycles per 128 px of tile; checkpoints from before the setting used the first."""
    first = band_in_units(FIRST_BAND)
    return (saved_config.get("band_low", first[0]), saved_config.get("band_high", first[1]))


def parse_args(input_args: list[str] | None = None) -> Phase1Config:
    args = build_parser().parse_args(input_args)
    return Phase1Config(**{k.replace("-", "_"): v for k, v in vars(args).items()})
