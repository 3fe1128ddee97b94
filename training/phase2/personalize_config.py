"""The settings of one personalization (``PersonalizeConfig``); imports neither torch nor diffusers."""

from __future__ import annotations

from dataclasses import dataclass

from training.phase2_methods import DEFAULT_LEARNING_RATE, DEFAULT_STEPS, LORA_TARGET_SETS, METHODS


@dataclass
class PersonalizeConfig:
    method: str                                      # "dreambooth" | "lora" | "textual_inversion"
    instance_prompt: str = "a painting in the style of <sks>"
    placeholder_token: str = "<sks>"                 # TI: the new token; DreamBooth/LoRA: just rare text
    initializer_token: str = "painting"              # TI: the row the placeholder starts from
    resolution: int = 512
    train_steps: int | None = None                   # optimizer steps; None: DEFAULT_STEPS[method]
    batch_size: int = 1
    gradient_accumulation: int = 1
    learning_rate: float | None = None               # None: DEFAULT_LEARNING_RATE[method]
    scale_lr: bool | None = None                     # lr x batch x accumulation x processes; None: TI only
    lr_scheduler: str = "constant"                   # any diffusers.optimization schedule name
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    lora_rank: int = 4
    lora_targets: str = "attention"                  # a LORA_TARGET_SETS name
    prior_preservation: bool = False
    prior_loss_weight: float = 1.0
    class_prompt: str | None = None                  # e.g. "a painting"; required with prior preservation
    class_images_dir: str | None = None              # None: out_dir/class_images (made by the base model)
    num_class_images: int = 100
    random_flip: bool = True                         # diffusers' RandomHorizontalFlip (p = 0.5)
    center_crop: bool = False                        # False: a random crop, as diffusers' default RandomCrop
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"                    # auto | no | fp16 | bf16; auto: bf16/fp16 on CUDA, fp32 else
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    resume: str | None = None                        # a checkpoint file, or "latest" in out_dir/checkpoints
    device: str = "auto"
    validation_prompt: str | None = None             # None: instance_prompt
    validation_images: int = 1                       # samples written to out_dir/validation (0: none)
    validation_steps: int = 25
    threads: int = 0                                 # torch CPU threads (0: torch's default)

    def augmentation(self) -> dict[str, object]:
        """What is done to each training image (recorded with a personalization; ``cache`` compares it)."""
        return {"random_flip": self.random_flip, "crop": "center" if self.center_crop else "random"}

    def resolved_steps(self) -> int:
        return self.train_steps if self.train_steps is not None else DEFAULT_STEPS[self.method]

    def resolved_learning_rate(self, num_processes: int = 1) -> float:
        lr = self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]
        scale = self.scale_lr if self.scale_lr is not None else self.method == "textual_inversion"
        return lr * self.batch_size * self.gradient_accumulation * num_processes if scale else lr

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.prior_preservation and not self.class_prompt:
            raise ValueError("prior preservation needs a class prompt (e.g. 'a painting')")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError("mixed_precision must be auto, no, fp16 or bf16")
        if self.lora_targets not in LORA_TARGET_SETS:
            raise ValueError(f"lora_targets must be one of {', '.join(LORA_TARGET_SETS)}, got {self.lora_targets!r}")
        if self.resolution % 8:
            raise ValueError("resolution must be a multiple of 8")
