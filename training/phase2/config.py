"""Phase 2's settings for one subject (``Phase2Config``), as the CLI and the GUI fill them in.

Imports neither torch nor diffusers, so the GUI can build and check a config before a run starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from training.phase2_methods import METHODS, detector_sets

if TYPE_CHECKING:
    from training.phase2.detector_finetune import DetectorFinetuneConfig
    from training.phase2.personalize_config import PersonalizeConfig

DEFAULT_P = 0.05  # the app's default level; other budgets get their own folders (Phase2Config.tag)


@dataclass
class Phase2Config:
    base: str                                       # HF id, diffusers folder or .safetensors
    images_dir: str                                 # the subject's images X
    out: str = "runs/phase2"
    methods: tuple[str, ...] = ("lora",)
    model_dir: str | None = None                    # watermark model (G + Phase 1 D); None: the shipped default
    key_file: str | None = None                     # raw 32-byte key or a `gwm profile export` JSON
    profile: str | None = None                      # a profile name (used when key_file is None; default "default")
    p: float = DEFAULT_P                            # LPIPS budget of X_w
    watermark_fraction: float = 1.0                 # share of X watermarked in X_w (0.25: the paper's partial case)
    prompts: str = "art"                            # "art" | "face" | a text file, one prompt per line
    n_train_prompts: int = 12
    n_heldout_prompts: int = 8
    n_validation_prompts: int = 4                   # choose D's step and threshold (0: last step, bias as trained)
    images_per_prompt: int = 4                      # seeds per training / validation prompt (distinct_seeds)
    heldout_images_per_prompt: int = 4              # held-out seeds per held-out prompt
    paired_seeds: bool = False                      # S_w from S's very (prompt, seed) pairs (before issue 14)
    synth_steps: int = 30
    guidance: float = 7.5
    synth_resolution: int | None = None             # None: the personalization resolution
    synth_batch_size: int = 1
    negative_prompt: str | None = None
    # personalization (shared by every method; per-method overrides in method_overrides)
    instance_prompt: str = "a painting in the style of <sks>"
    placeholder_token: str = "<sks>"
    initializer_token: str = "painting"
    resolution: int = 512
    train_steps: int | None = None                  # None: each method's default (phase2_methods.DEFAULT_STEPS)
    learning_rate: float | None = None              # None: each method's default (phase2_methods.DEFAULT_LEARNING_RATE)
    batch_size: int = 1
    gradient_accumulation: int = 1
    lora_rank: int = 4
    lora_targets: str = "attention"               # attention | transformer (personalize.LORA_TARGET_SETS)
    random_flip: bool = True                        # diffusers' training augmentations (PersonalizeConfig)
    center_crop: bool = False                       # False: random crop
    prior_preservation: bool = False
    class_prompt: str | None = None
    class_images_dir: str | None = None
    num_class_images: int = 100
    mixed_precision: str = "auto"
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"lora": {"train_steps": 300}}
    # detector fine-tuning
    finetune_steps: int = 300
    finetune_lr: float = 1e-3                      # chosen on validation images (training/miniature/README.md)
    finetune_batch_size: int = 16
    phase1_mix: float = 0.5
    phase1_data: list[str] = field(default_factory=list)  # folders; empty: the subject's own clean images X
    joint_detector: bool = True                     # also fine-tune one detector on all methods' images
    device: str = "auto"
    seed: int = 0
    threads: int = 0

    @property
    def tag(self) -> str:
        """Suffix of everything made from X_w: a run at another fraction or budget must not reuse models
        trained on other watermarked images (the personalization records know nothing of X_w)."""
        fraction = "" if self.watermark_fraction >= 1.0 else f"_wf{self.watermark_fraction:g}"
        return fraction + ("" if self.p == DEFAULT_P else f"_p{self.p:g}")

    def personalize_config(self, method: str) -> PersonalizeConfig:
        from training.phase2.personalize_config import PersonalizeConfig

        names = {f.name for f in fields(PersonalizeConfig)}
        values = {k: v for k, v in asdict(self).items() if k in names and k != "method"}
        values.update(self.method_overrides.get(method, {}))
        return PersonalizeConfig(method=method, **values)

    def finetune_config(self) -> DetectorFinetuneConfig:
        from training.phase2.detector_finetune import DetectorFinetuneConfig

        return DetectorFinetuneConfig(steps=self.finetune_steps, lr=self.finetune_lr,
                                      batch_size=self.finetune_batch_size, phase1_mix=self.phase1_mix, p=self.p,
                                      device=self.device, seed=self.seed, threads=self.threads)

    def detector_sets(self) -> dict[str, list[str]]:
        """{detector name: methods whose images it is fine-tuned on} (``phase2_methods.detector_sets``)."""
        return detector_sets(self.methods, self.joint_detector)

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods must be among {', '.join(METHODS)}, got {list(self.methods)}")
        if not 0 < self.watermark_fraction <= 1:
            raise ValueError("watermark_fraction must be in (0, 1]")
        if not 0 < self.p < 1:
            raise ValueError("p must be in (0, 1)")

