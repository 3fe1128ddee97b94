"""Where one Phase 2 run keeps what it makes, and which prompts and seeds each split uses.

``RunLayout`` knows the run folder's paths and the images already synthesized for this run's
(prompt, seed) pairs, which differ between a clean model and the one personalized on X_w
(``splits.split_seeds``); ``pipeline.Phase2Run`` adds the stages, ``results`` reads the outcome.
"""

from __future__ import annotations

from pathlib import Path

from training.datasets import list_images
from training.phase2.config import Phase2Config
from training.phase2.splits import split_prompts, split_seeds
from training.phase2.synthesize import load_prompts


class RunLayout:
    """Paths, prompts and seeds of one Phase 2 run (validates ``config``; needs images in it)."""

    def __init__(self, config: Phase2Config) -> None:
        config.validate()
        self.config = config
        self.out = Path(config.out)
        self.images = list_images([Path(config.images_dir)])
        if not self.images:
            raise ValueError(f"no images in {config.images_dir}")
        prompts = load_prompts(config.prompts, config.placeholder_token)
        # Validation prompts come last in the shuffle, so adding them keeps the training and held-out split.
        self.train_prompts, self.heldout_prompts, self.validation_prompts = split_prompts(
            prompts, config.n_train_prompts, config.n_heldout_prompts, config.seed, config.n_validation_prompts)
        self.split_prompts = {"train": self.train_prompts, "validation": self.validation_prompts,
                              "heldout": self.heldout_prompts}
        per_prompt = {"train": config.images_per_prompt, "validation": config.images_per_prompt,
                      "heldout": config.heldout_images_per_prompt}
        # {(split, marked): seeds per prompt}: the model personalized on X_w has seeds of its own.
        self.seeds = {(split, marked): split_seeds(config.seed, split, marked, len(prompts), per_prompt[split],
                                                   config.paired_seeds)
                      for split, prompts in self.split_prompts.items() for marked in (False, True)}
        self.train_seeds = self.seeds[("train", False)]
        self.validation_seeds = self.seeds[("validation", False)]
        self.heldout_seeds = self.seeds[("heldout", False)]
        self.marked_name = f"marked{config.tag}"

    @property
    def marked_images_dir(self) -> Path:
        return self.out / "data" / f"X_w{self.config.tag}"

    def model_dir(self, method: str, variant: str) -> Path:
        return self.out / "models" / method / variant

    def synth_dir(self, method: str, variant: str, split: str) -> Path:
        return self.out / "synth" / method / variant / split

    def detector_dir(self, name: str) -> Path:
        return self.out / f"detectors{self.config.tag}" / name

    def watermark_model_dir(self) -> Path:
        from gwm_desktop.core.engine import default_model_dir

        return Path(self.config.model_dir) if self.config.model_dir else default_model_dir()

    def synth_splits(self, variant: str = "clean") -> list[tuple[str, list[str], list[list[int]]]]:
        """(split, prompts, seeds per prompt) of every set synthesized by the ``variant`` model ("clean"
        or ``marked_name``); validation only when asked for."""
        names = ["train", "validation", "heldout"] if self.validation_prompts else ["train", "heldout"]
        return [(split, self.split_prompts[split], self.seeds[(split, variant != "clean")]) for split in names]

    def seeds_record(self) -> dict[str, dict[str, list[list[int]]]]:
        """{"clean" | "marked": {split: seeds per prompt}}: what the report records."""
        return {variant: {split: self.seeds[(split, variant == "marked")] for split in self.split_prompts}
                for variant in ("clean", "marked")}

    def split_images(self, method: str, variant: str, split: str) -> list[Path]:
        """The images of this run's (prompt, seed) pairs in one model's synthesized set, sorted by
        (prompt, seed); files made for other prompts or seeds (an earlier run's settings) are left out."""
        from training.phase2.synthesize import read_records

        folder = self.synth_dir(method, variant, split)
        _, prompts, seeds = next(entry for entry in self.synth_splits(variant) if entry[0] == split)
        wanted = {(prompt, seed) for prompt, own in zip(prompts, seeds, strict=True) for seed in own}
        files = {(r.prompt, r.seed): folder / r.file for r in read_records(folder)}
        return [files[pair] for pair in sorted(wanted) if pair in files and files[pair].exists()]

    def sets_of(self, methods: list[str] | tuple[str, ...], split: str) -> tuple[list[Path], list[Path]]:
        """(S, S_w) of a split: the clean and the watermarked models' images, every method's together.
        Two sets, not pairs: they share no (prompt, seed) unless ``paired_seeds``."""
        return ([path for m in methods for path in self.split_images(m, "clean", split)],
                [path for m in methods for path in self.split_images(m, self.marked_name, split)])

    def detector_sets(self) -> dict[str, list[str]]:
        return self.config.detector_sets()

