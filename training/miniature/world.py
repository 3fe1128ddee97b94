"""Builds (and caches) the miniature world's parts under one folder: corpus, autoencoder, prior, subject.

Each ``ensure_*`` returns at once when its output exists, so ``run.py`` re-runs cheaply and a crashed
stage resumes from its last checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gwm_desktop.core.textures import FIRST_BAND, PATTERN_BAND, band_from_units, band_in_units
from training.miniature.autoencoder import AutoencoderConfig, train_autoencoder
from training.miniature.data import CorpusItem, all_caption_words, build_corpus, stack_images
from training.miniature.prior import PriorConfig, assemble_pipeline, train_prior
from training.miniature.text_encoder import build_text_encoder, build_tokenizer

DEFAULT_PORTRAITS = Path("/work/shared/data/portraits")
DEFAULT_PAINTINGS = Path("/work/shared/data/paintings")
DEFAULT_EXTRA = Path("runs/data/skimage")

Log = Callable[[str], None]


@dataclass
class WorldConfig:
    out: Path = Path("runs/miniature")
    portraits: Path = DEFAULT_PORTRAITS
    paintings: Path = DEFAULT_PAINTINGS
    extra: list[Path] = field(default_factory=lambda: [DEFAULT_EXTRA])
    resolution: int = 64
    max_corpus: int = 0                 # 0: every portrait of the training pool
    sample_steps: int = 25              # DDIM steps of the base model's sample grid
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)


def corpus_cache(config: WorldConfig, log: Log = print) -> tuple[list[CorpusItem], list[CorpusItem]]:
    """(training pool, held-out eval split) at the world's resolution, cached as one .pt file."""
    path = config.out / "corpus" / f"corpus_{config.resolution}_{config.max_corpus}.pt"
    if path.exists():
        data = torch.load(path, weights_only=False)
        return data["train"], data["eval"]
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = [p for p in config.extra if Path(p).is_dir()]
    if len(extra) != len(config.extra):
        log(f"note: extra corpus folders missing, skipped: {[str(p) for p in config.extra if p not in extra]}")
    train = build_corpus(config.portraits, extra, config.resolution, "train_pool", max_images=config.max_corpus)
    held = build_corpus(config.portraits, [], config.resolution, "eval",
                        max_images=max(8, config.max_corpus // 5) if config.max_corpus else 0)
    torch.save({"train": train, "eval": held}, path)
    log(f"corpus: {len(train)} training items ({sum(i.kind == 'painting' for i in train)} filtered 'paintings'), "
        f"{len(held)} held-out portraits")
    return train, held


def ensure_autoencoder(config: WorldConfig, log: Log = print, lpips: torch.nn.Module | None = None) -> Path:
    folder = config.out / "autoencoder"
    if (folder / "model" / "config.json").exists() and (folder / "summary.json").exists():
        return folder / "model"
    folder.mkdir(parents=True, exist_ok=True)
    train, held = corpus_cache(config, log)
    if lpips is None:
        from gwm_desktop.core.lpips_metric import build_lpips
        lpips = build_lpips("cpu")
    images = stack_images(i for i in train if i.kind != "painting")
    held_images = stack_images(held)
    last = None
    for progress in train_autoencoder(images, held_images, folder, config.autoencoder, lpips):
        if progress.done % 100 == 0 or progress.done == progress.total:
            payload = progress.payload
            log(progress.message + (f" l1={payload['l1']:.4f} lpips={payload['lpips']:.3f}" if "l1" in payload else ""))
        last = progress
    assert last is not None
    log(f"autoencoder: held-out PSNR {last.payload['held_out_psnr_db']} dB on {last.payload['held_out_images']} images")
    return folder / "model"


# -- the watermark model at the world's resolution ----------------------------------------------------
@dataclass
class WatermarkStageConfig:
    steps: int = 1000
    warmup_steps: int = 400
    batch_size: int = 16
    max_images: int = 0
    autoencoder_steps: int = 300        # then fine-tuned with the autoencoder round trip (watermark.py)
    autoencoder_batch_size: int = 8
    autoencoder_share: float = 0.5
    # The whole 64 px frame is one tile and 16 bits fit the pattern band there (at the default band
    # 1.75 to 7.5 cycles across the frame, under the 4x latent grid's 8, as the shipped model's 30 cycles
    # are under Stable Diffusion's 32 at 512 px): half-frame tiles would push 32 bits above it.
    n_bits: int = 16
    tile: int = 64
    band_low: float = band_in_units(PATTERN_BAND)[0]    # cycles per 128 px of tile, as ``gwm train phase1 --band-low``
    band_high: float = band_in_units(PATTERN_BAND)[1]

    @property
    def tag(self) -> str:
        """Bits and tile, plus the step count when it is not the default and the band unless it is the
        first one (the folders of the worlds measured before the band moved), so runs of different
        settings never share a folder."""
        steps = "" if self.steps == WatermarkStageConfig.steps else f"_s{self.steps}"
        first = band_from_units(self.band_low, self.band_high) == FIRST_BAND
        band = "" if first else f"_f{self.band_low:g}-{self.band_high:g}"
        return f"b{self.n_bits}_t{self.tile}{steps}{band}"

    @property
    def autoencoder_tag(self) -> str:
        """Suffix of the autoencoder-aware model's folder (its step count when not the default)."""
        default = WatermarkStageConfig.autoencoder_steps
        return "_ae" if self.autoencoder_steps == default else f"_ae{self.autoencoder_steps}"


def ensure_watermark_model(config: WorldConfig, stage: WatermarkStageConfig, log: Log = print) -> Path:
    """Phase 1 at the world's working size (G tile and bits from the stage config), via training.phase1."""
    from training.phase1 import Phase1Trainer, command_line
    from training.phase1_config import Phase1Config

    folder = config.out / f"watermark{config.resolution}_{stage.tag}"
    if (folder / "model" / "manifest.json").exists():
        return folder / "model"
    data = [str(config.portraits)] + [str(p) for p in config.extra if Path(p).is_dir()]
    args = ["--working-size", str(config.resolution), "--steps", str(stage.steps), "--warmup-steps",
            str(stage.warmup_steps), "--batch-size", str(stage.batch_size), "--out", str(folder),
            "--checkpoint-every", "100", "--resume", "latest", "--max-images", str(stage.max_images),
            "--n-bits", str(stage.n_bits), "--tile", str(stage.tile), "--band-low", f"{stage.band_low:g}",
            "--band-high", f"{stage.band_high:g}"]
    for d in data:
        args += ["--data", d]
    phase1 = Phase1Config(data=data, out=str(folder), steps=stage.steps, warmup_steps=stage.warmup_steps,
                          batch_size=stage.batch_size, working_size=config.resolution, checkpoint_every=100,
                          resume="latest", max_images=stage.max_images, device="cpu", n_bits=stage.n_bits,
                          tile=stage.tile, band_low=stage.band_low, band_high=stage.band_high)
    trainer = Phase1Trainer(phase1)
    for progress in trainer.run():
        if progress.done % 100 == 0 or progress.done == progress.total:
            m = progress.payload
            log(f"watermark model {progress.message}: lpips {m['lpips']:.3f} bits {m['bit_acc']:.2f} "
                f"own {m['agree_marked']:.2f} other {m['agree_other']:.2f}")
    trainer.export(folder / "model", command_line(args))
    return folder / "model"


# -- text encoder + prior -> a Stable Diffusion pipeline folder --------------------------------------
PRIOR_RECORD = "miniature_prior.json"   # the PriorConfig a base pipeline was pretrained with
EARLIER_PRIOR_STEPS = 1000             # base pipelines saved before the record existed used the then default


def prior_steps_of(base_pipeline: Path) -> int:
    record = Path(base_pipeline) / PRIOR_RECORD
    return json.loads(record.read_text())["steps"] if record.exists() else EARLIER_PRIOR_STEPS


def ensure_base_pipeline(config: WorldConfig, prior_config: PriorConfig, vae_dir: Path, log: Log = print) -> Path:
    """Pretrain the prior (and the text encoder) and save ``out/base_pipeline`` with ``save_pretrained``."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    target = config.out / "base_pipeline"
    if (target / "model_index.json").exists():
        cached = prior_steps_of(target)
        if cached != prior_config.steps:
            raise ValueError(f"{target} holds a prior pretrained for {cached} steps, not {prior_config.steps}: "
                             f"pass --prior-steps {cached} to use it, or another --out")
        return target
    folder = config.out / "prior"
    folder.mkdir(parents=True, exist_ok=True)
    train, _ = corpus_cache(config, log)
    vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval().requires_grad_(False)
    tokenizer = build_tokenizer(all_caption_words())
    text_encoder = build_text_encoder(tokenizer, hidden_size=prior_config.cross_attention_dim)
    unet = None
    for progress in train_prior(train, vae, tokenizer, text_encoder, folder, prior_config):
        if progress.done % 250 == 0 and "loss" in (progress.payload or {}):
            recent = [json.loads(line)["loss"] for line in
                      (folder / "log.jsonl").read_text().splitlines()[-250:]]
            log(f"{progress.message}: mean loss (last 250) {sum(recent) / len(recent):.4f}")
        if isinstance(progress.payload, dict) and "unet" in progress.payload:
            unet = progress.payload["unet"]
    assert unet is not None
    pipeline = assemble_pipeline(vae, text_encoder, tokenizer, unet)
    staging = config.out / ".base_pipeline.tmp"
    pipeline.save_pretrained(str(staging), safe_serialization=True)
    (staging / PRIOR_RECORD).write_text(json.dumps(asdict(prior_config), indent=2) + "\n", encoding="utf-8")
    if target.exists():
        import shutil
        shutil.rmtree(target)
    staging.rename(target)
    reloaded = StableDiffusionPipeline.from_pretrained(str(target), local_files_only=True, safety_checker=None,
                                                       requires_safety_checker=False)
    reloaded.set_progress_bar_config(disable=True)
    write_sample_grid(reloaded, config.out / "base_samples.png", config.resolution, steps=config.sample_steps)
    log(f"base pipeline saved to {target} (reloads with from_pretrained; samples in {config.out / 'base_samples.png'})")
    return target


SAMPLE_PROMPTS = ("a photo of a person", "a black and white photo of a man", "a photo of a face on a dark background",
                  "a painting of a person", "an oil painting of a man", "a photo of a cat")


@torch.no_grad()
def write_sample_grid(pipeline, path: Path, resolution: int, seeds: int = 4, steps: int = 25) -> None:
    """One row per SAMPLE_PROMPTS prompt, ``seeds`` columns: the base model's look, for a person to judge."""
    from PIL import Image

    rows = []
    for prompt in SAMPLE_PROMPTS:
        images = pipeline([prompt] * seeds, num_inference_steps=steps, guidance_scale=7.5, height=resolution,
                          width=resolution, generator=[torch.Generator().manual_seed(s) for s in range(seeds)]).images
        rows.append(images)
    grid = Image.new("RGB", (resolution * seeds, resolution * len(rows)))
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            grid.paste(image, (c * resolution, r * resolution))
    grid.save(path)
