"""Personalization of a text-to-image model on one subject's images: DreamBooth, LoRA DreamBooth, Textual Inversion.

Phase 2 personalizes a public model twice, on the subject's clean images X and on its watermarked
images X_w, the way a forger would (SPEC section 2). The loop is the one of diffusers' own training
examples (``train_dreambooth.py``, ``train_dreambooth_lora.py``, ``textual_inversion.py``), run through
``accelerate.Accelerator`` so that ``accelerate launch --multi_gpu -m training.phase2.cli ...`` spreads it over
several GPUs, with mixed precision on CUDA (bf16 where supported, else fp16) and fp32 on MPS and CPU:

* **dreambooth**: the whole UNet trains (lr 5e-6, 400 steps); text encoder and VAE frozen; optional
  prior preservation with class images the base model makes from ``class_prompt``.
* **lora**: rank-``lora_rank`` adapters (peft) on the UNet's attention projections (lr 1e-4, 500 steps;
  ``lora_targets`` widens them to kohya-ss' transformer set or LoCon's convolutions); the base weights
  never change; the adapter is saved in diffusers' LoRA format.
* **textual_inversion**: only the placeholder token's embedding row trains (lr 5e-4 x batch x
  accumulation x processes, 2000 steps); every other row is restored after each step, bit for bit.

The loss is the usual denoising objective on VAE latents (epsilon or v target, per the scheduler).
The VAE is frozen, so each image's latent distribution is encoded once and sampled every step (the
same distribution the examples sample, at a fraction of the cost). All randomness (batches, noise,
timesteps) comes from one CPU generator saved in checkpoints, so a resumed run continues exactly.

Output folder: ``personalization.json`` (written last: a folder without it is incomplete) plus
``unet/`` (DreamBooth), ``pytorch_lora_weights.safetensors`` (LoRA) or ``learned_embeds.safetensors``
(Textual Inversion, ``{token: (hidden,)}`` as diffusers' example writes it), ``validation/`` sample(s)
with their records, and ``checkpoints/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.jobs import CancelToken, Progress
from training.checkpoints import latest_checkpoint, save_checkpoint
from training.datasets import list_images
from training.phase2.latent_data import LatentSet, build_latent_set
from training.phase2.loading import (
    EMBEDS_FILE,
    LORA_FILE,
    MANIFEST,
    choose_mixed_precision,
    inference_dtype,
    is_personalized,
    load_base_pipeline,
    load_personalized,
    precision_dtype,
    read_personalization,
)

METHODS = ("dreambooth", "lora", "textual_inversion")
DEFAULT_LEARNING_RATE = {"dreambooth": 5e-6, "lora": 1e-4, "textual_inversion": 5e-4}
DEFAULT_STEPS = {"dreambooth": 400, "lora": 500, "textual_inversion": 2000}
# Which UNet layers get LoRA adapters. "attention": the projections diffusers' train_dreambooth_lora.py
# adapts. "transformer": every linear (and 1x1 conv) layer of the transformer blocks (attention, feed-forward,
# proj_in/proj_out), the set kohya-ss sd-scripts' LoRA adapts by default (a common trainer for shared LoRAs).
_ATTENTION = ["to_k", "to_q", "to_v", "to_out.0"]
_TRANSFORMER = [*_ATTENTION, "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
LORA_TARGET_SETS = {
    "attention": _ATTENTION,
    "transformer": _TRANSFORMER,
    # "transformer" plus the ResNet blocks' 3x3 convolutions: kohya-ss' LoRA with conv_dim set, or
    # LyCORIS' LoCon. Common, though not the default.
    "transformer_conv": [*_TRANSFORMER, "conv1", "conv2"],
}


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
    random_flip: bool = False
    center_crop: bool = True
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


def _place(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move to ``device``; cast only when the dtype changes (loaded weights are fp32)."""
    module.to(device)
    if dtype != torch.float32:
        module.to(dtype=dtype)


# -- the trainer -------------------------------------------------------------------------------------
def _reset_accelerate_state() -> None:
    """Let one process (the GUI) run several jobs with different precisions; never under a multi-process launch."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 or (PartialState._shared_state and PartialState().num_processes > 1):
        return
    AcceleratorState._reset_state()
    GradientState._reset_state()


class Personalizer:
    """One personalization run; ``run()`` is the job generator, ``save()`` writes the output folder."""

    def __init__(self, base: str | Path, images_dir: Path, out_dir: Path, config: PersonalizeConfig,
                 cancel: CancelToken | None = None) -> None:
        from accelerate import Accelerator

        config.validate()
        self.config = config
        self.base = str(base)
        self.images_dir = Path(images_dir)
        self.out_dir = Path(out_dir)
        self.cancel = cancel or CancelToken()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        requested = resolve_device(config.device)  # fails clearly on a missing backend
        _reset_accelerate_state()
        device_type = requested.type if config.device != "auto" else (
            "cuda" if torch.cuda.is_available() else requested.type)
        self.mixed_precision = choose_mixed_precision(config.mixed_precision, torch.device(device_type))
        self.accelerator = Accelerator(gradient_accumulation_steps=config.gradient_accumulation,
                                       mixed_precision=self.mixed_precision, cpu=requested.type == "cpu")
        self.device = self.accelerator.device
        self.weight_dtype = precision_dtype(self.mixed_precision)
        self.rng = torch.Generator().manual_seed(config.seed + self.accelerator.process_index)
        self.step = 0
        self.total_steps = config.resolved_steps()
        self.instance_paths = list_images([self.images_dir])
        if not self.instance_paths:
            raise ValueError(f"no images in {self.images_dir}")

    # -- setup ---------------------------------------------------------------------------------------
    def _prepare_models(self) -> None:
        from diffusers import DDPMScheduler
        from diffusers.optimization import get_scheduler

        cfg = self.config
        pipeline = load_base_pipeline(self.base, "cpu", torch.float32)
        self.scheduler_config = dict(pipeline.scheduler.config)
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.tokenizer = pipeline.tokenizer
        self.text_encoder = pipeline.text_encoder
        self.vae = pipeline.vae
        self.unet = pipeline.unet
        self.pipeline_parts = {"feature_extractor": getattr(pipeline, "feature_extractor", None)}
        for module in (self.vae, self.text_encoder, self.unet):
            module.requires_grad_(False)
        _place(self.vae, self.device, self.weight_dtype)
        if cfg.method == "textual_inversion":
            self._setup_textual_inversion()
            _place(self.unet, self.device, self.weight_dtype)
            _place(self.text_encoder, self.device, torch.float32)
            trainable = [self.text_encoder.get_input_embeddings().weight]
            self.model = self.text_encoder
            self.model.train()
        else:
            _place(self.text_encoder, self.device, self.weight_dtype)
            if cfg.method == "lora":
                from peft import LoraConfig

                _place(self.unet, self.device, self.weight_dtype)
                with torch.random.fork_rng(devices=[]):  # the adapters' random init follows cfg.seed
                    torch.manual_seed(cfg.seed + self.accelerator.process_index)
                    self.unet.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_rank,
                                                     init_lora_weights="gaussian",
                                                     target_modules=LORA_TARGET_SETS[cfg.lora_targets]))
                trainable = [p for p in self.unet.parameters() if p.requires_grad]
                for param in trainable:  # adapters train in fp32 even when the base runs in half precision
                    param.data = param.data.float()
            else:
                _place(self.unet, self.device, torch.float32)
                self.unet.requires_grad_(True)
                trainable = list(self.unet.parameters())
            if cfg.gradient_checkpointing:
                self.unet.enable_gradient_checkpointing()
            self.model = self.unet
            self.model.train()
        lr = cfg.resolved_learning_rate(self.accelerator.num_processes)
        self.learning_rate = lr
        weight_decay = 0.0 if cfg.method == "textual_inversion" else cfg.adam_weight_decay
        self.optimizer = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, eps=1e-8)
        self.lr_schedule = get_scheduler(cfg.lr_scheduler, optimizer=self.optimizer,
                                         num_warmup_steps=cfg.lr_warmup_steps * self.accelerator.num_processes,
                                         num_training_steps=self.total_steps * self.accelerator.num_processes)
        self.model, self.optimizer, self.lr_schedule = self.accelerator.prepare(
            self.model, self.optimizer, self.lr_schedule)

    def _setup_textual_inversion(self) -> None:
        cfg = self.config
        tokenizer, encoder = self.tokenizer, self.text_encoder
        init_ids = tokenizer.encode(cfg.initializer_token, add_special_tokens=False)
        if len(init_ids) != 1:
            raise ValueError(f"initializer token {cfg.initializer_token!r} must be a single token, is {len(init_ids)}")
        tokenizer.add_tokens(cfg.placeholder_token)  # no-op when the tokenizer already knows it
        ids = tokenizer.encode(cfg.placeholder_token, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"placeholder {cfg.placeholder_token!r} does not tokenize to one token")
        self.placeholder_id = ids[0]
        encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        embeddings = encoder.get_input_embeddings().weight
        with torch.no_grad():
            embeddings[self.placeholder_id] = embeddings[init_ids[0]].clone()
        embeddings.requires_grad_(True)
        self.original_embeddings = embeddings.detach().clone()
        self.keep_rows = torch.ones(len(tokenizer), dtype=torch.bool)
        self.keep_rows[self.placeholder_id] = False

    def _tokenize(self, prompt: str) -> torch.Tensor:
        return self.tokenizer(prompt, padding="max_length", truncation=True, max_length=self.tokenizer.model_max_length,
                              return_tensors="pt").input_ids

    def _data_options(self) -> tuple[int, bool, bool]:
        return self.config.resolution, self.config.center_crop, self.config.random_flip

    def _prepare_data(self) -> Iterator[Progress]:
        cfg = self.config
        sets = [build_latent_set(self.vae, self.instance_paths, cfg.instance_prompt, *self._data_options())]
        if cfg.prior_preservation:
            yield from self._ensure_class_images()
            class_paths = list_images([self.class_dir])[: cfg.num_class_images]
            sets.append(build_latent_set(self.vae, class_paths, cfg.class_prompt or "", *self._data_options()))
        self.latent_sets = sets
        self.input_ids = [self._tokenize(s.prompt) for s in sets]
        if cfg.method != "textual_inversion":  # frozen text encoder: encode each prompt once
            with torch.no_grad():
                self.prompt_embeds = [self.text_encoder(ids.to(self.device))[0].float() for ids in self.input_ids]

    def _ensure_class_images(self) -> Iterator[Progress]:
        """Prior preservation's class images, made by the untouched base model (cached between runs)."""
        from training.phase2.synthesize import synthesize

        cfg = self.config
        self.class_dir = Path(cfg.class_images_dir) if cfg.class_images_dir else self.out_dir / "class_images"
        have = len(list_images([self.class_dir])) if self.class_dir.is_dir() else 0
        if have >= cfg.num_class_images or not self.accelerator.is_main_process:
            self.accelerator.wait_for_everyone()
            return
        pipeline = load_base_pipeline(self.base, self.device, inference_dtype(self.device, cfg.mixed_precision))
        for progress in synthesize(pipeline, [cfg.class_prompt or ""], list(range(cfg.num_class_images)),
                                   self.class_dir, steps=cfg.validation_steps, resolution=cfg.resolution,
                                   cancel=self.cancel):
            yield Progress(0, self.total_steps, f"class image {progress.done}/{progress.total}",
                           {"stage": "class_images", "record": progress.payload})
        del pipeline
        self.accelerator.wait_for_everyone()

    # -- checkpoints ---------------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        model = self.accelerator.unwrap_model(self.model)
        if self.config.method == "lora":
            from peft.utils import get_peft_model_state_dict

            return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
        if self.config.method == "textual_inversion":
            row = model.get_input_embeddings().weight[self.placeholder_id]
            return {"placeholder_embedding": row.detach().cpu().clone()}
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        model = self.accelerator.unwrap_model(self.model)
        if self.config.method == "lora":
            from peft.utils import set_peft_model_state_dict

            set_peft_model_state_dict(model, state)
        elif self.config.method == "textual_inversion":
            with torch.no_grad():
                model.get_input_embeddings().weight[self.placeholder_id] = state["placeholder_embedding"]
        else:
            model.load_state_dict(state)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"step": self.step, "method": self.config.method, "trainable": self.trainable_state(),
                "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                "rng": self.rng.get_state(), "config": asdict(self.config)}

    def _resume(self) -> None:
        which = self.config.resume
        folder = self.out_dir / "checkpoints"
        path = latest_checkpoint(folder) if which == "latest" else Path(which or "")
        if path is None:
            return  # "latest" with nothing saved yet: a fresh start, as diffusers' scripts do
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["method"] != self.config.method:
            raise ValueError(f"checkpoint {path} is a {state['method']} run, not {self.config.method}")
        self.load_trainable_state(state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.rng.set_state(state["rng"])
        self.step = int(state["step"])

    # -- one step ------------------------------------------------------------------------------------
    def _noisy_batch(self, latent_set: LatentSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, timesteps, target, indices) for one micro-batch drawn from ``latent_set``."""
        bsz = self.config.batch_size
        indices = torch.randint(0, len(latent_set.mean), (bsz,), generator=self.rng)
        posterior_noise = torch.randn((bsz, *latent_set.mean.shape[1:]), generator=self.rng)
        latents = latent_set.sample(indices, posterior_noise) * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=self.rng)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (bsz,), generator=self.rng)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return noisy.to(self.device), timesteps.to(self.device), target.to(self.device), indices

    def _loss(self) -> torch.Tensor:
        cfg = self.config
        losses = []
        for set_index, latent_set in enumerate(self.latent_sets):
            noisy, timesteps, target, _ = self._noisy_batch(latent_set)
            if cfg.method == "textual_inversion":
                ids = self.input_ids[set_index].to(self.device).expand(len(noisy), -1)
                hidden = self.model(ids)[0].to(self.weight_dtype)
            else:
                hidden = self.prompt_embeds[set_index].expand(len(noisy), -1, -1)
            with self.accelerator.autocast():
                prediction = self.model(noisy, timesteps, hidden).sample if cfg.method != "textual_inversion" \
                    else self.unet(noisy.to(self.weight_dtype), timesteps, hidden).sample
            weight = 1.0 if set_index == 0 else cfg.prior_loss_weight
            losses.append(weight * F.mse_loss(prediction.float(), target.float(), reduction="mean"))
        return torch.stack(losses).sum()

    def train_step(self) -> float:
        total = 0.0
        for _ in range(self.config.gradient_accumulation):
            with self.accelerator.accumulate(self.model):
                loss = self._loss()
                self.accelerator.backward(loss)
                if self.accelerator.sync_gradients and self.config.max_grad_norm > 0:
                    params = [p for g in self.optimizer.param_groups for p in g["params"]]
                    self.accelerator.clip_grad_norm_(params, self.config.max_grad_norm)
                self.optimizer.step()
                self.lr_schedule.step()
                self.optimizer.zero_grad(set_to_none=True)
                if self.config.method == "textual_inversion":
                    self._restore_other_embeddings()
            total += float(loss.detach()) / self.config.gradient_accumulation
        return total

    @torch.no_grad()
    def _restore_other_embeddings(self) -> None:
        weight = self.accelerator.unwrap_model(self.model).get_input_embeddings().weight
        keep = self.keep_rows.to(weight.device)
        weight[keep] = self.original_embeddings.to(weight.device)[keep]

    # -- the job -------------------------------------------------------------------------------------
    def run(self) -> Iterator[Progress]:
        """Prepare, train to the configured steps (checkpointing), then save; one Progress per step.

        Cancelling (token or closing the generator) stops between steps: checkpoints already written
        stay (resume from them), the output folder gets no weights and no manifest.
        """
        cfg = self.config
        yield Progress(0, self.total_steps, "loading the base model", {"stage": "load"})
        self._prepare_models()
        yield from self._prepare_data()
        if cfg.resume:
            self._resume()
        started = time.monotonic()
        log_path = self.out_dir / "log.jsonl"
        if self.accelerator.is_main_process:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        while self.step < self.total_steps:
            self.cancel.raise_if_cancelled()
            loss = self.train_step()
            self.step += 1
            metrics = {"step": self.step, "loss": loss, "lr": self.lr_schedule.get_last_lr()[0],
                       "elapsed_s": round(time.monotonic() - started, 2)}
            if self.accelerator.is_main_process:
                with open(log_path, "a", encoding="utf-8") as log:
                    log.write(json.dumps(metrics) + "\n")
                if cfg.checkpoint_every > 0 and self.step % cfg.checkpoint_every == 0 and self.step < self.total_steps:
                    save_checkpoint(self.checkpoint_state(), self.out_dir / "checkpoints", self.step,
                                    cfg.keep_checkpoints)
            yield Progress(self.step, self.total_steps, f"{cfg.method} step {self.step}/{self.total_steps}", metrics)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.cancel.raise_if_cancelled()
            yield Progress(self.total_steps, self.total_steps, "saving", {"stage": "save"})
            yield from self.save()
        self.accelerator.wait_for_everyone()

    def save(self) -> Iterator[Progress]:
        """Write the artifacts into a staging folder, move them in, then the manifest (last)."""
        cfg = self.config
        staging = self.out_dir / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (self.out_dir / MANIFEST).unlink(missing_ok=True)
        try:
            model = self.accelerator.unwrap_model(self.model)
            if cfg.method == "dreambooth":
                model.save_pretrained(staging / "unet", safe_serialization=True)
                files = ["unet"]
            elif cfg.method == "lora":
                from diffusers import StableDiffusionPipeline
                from diffusers.utils import convert_state_dict_to_diffusers

                StableDiffusionPipeline.save_lora_weights(
                    staging, unet_lora_layers=convert_state_dict_to_diffusers(self.trainable_state()),
                    safe_serialization=True, weight_name=LORA_FILE)
                files = [LORA_FILE]
            else:
                from safetensors.torch import save_file

                save_file({cfg.placeholder_token: self.trainable_state()["placeholder_embedding"].float()},
                          str(staging / EMBEDS_FILE))
                files = [EMBEDS_FILE]
            if cfg.validation_images > 0:
                yield from self._validation(staging / "validation")
                files.append("validation")
            self.cancel.raise_if_cancelled()
            for name in files:
                target = self.out_dir / name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(staging / name, target)
            manifest = {"format": "gwm-personalization-v1", "method": cfg.method, "base": self.base,
                        "placeholder_token": cfg.placeholder_token, "instance_prompt": cfg.instance_prompt,
                        "steps_done": self.step, "learning_rate": self.learning_rate,
                        "mixed_precision": self.mixed_precision, "n_images": len(self.instance_paths),
                        "num_processes": self.accelerator.num_processes, "device": str(self.device),
                        "images_dir": str(self.images_dir), "files": files, "config": asdict(cfg)}
            write_atomic(self.out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _validation(self, folder: Path) -> Iterator[Progress]:
        """Samples from the trained model in memory: ``load_personalized`` must reproduce them from disk."""
        from diffusers import StableDiffusionPipeline

        from training.phase2.synthesize import synthesize

        cfg = self.config
        model = self.accelerator.unwrap_model(self.model)
        unet = model if cfg.method != "textual_inversion" else self.unet
        text_encoder = model if cfg.method == "textual_inversion" else self.text_encoder
        was_training = model.training
        model.eval()
        pipeline = StableDiffusionPipeline(
            vae=self.vae, text_encoder=text_encoder, tokenizer=self.tokenizer, unet=unet,
            scheduler=load_scheduler_like(self.scheduler_config), safety_checker=None,
            feature_extractor=self.pipeline_parts["feature_extractor"], requires_safety_checker=False)
        prompt = cfg.validation_prompt or cfg.instance_prompt
        with self.accelerator.autocast():
            for progress in synthesize(pipeline, [prompt], list(range(cfg.validation_images)), folder,
                                       steps=cfg.validation_steps, resolution=cfg.resolution, cancel=self.cancel):
                yield Progress(self.step, self.total_steps, f"validation image {progress.done}/{progress.total}",
                               {"stage": "validation", "record": progress.payload})
        model.train(was_training)


def load_scheduler_like(config: dict[str, Any]) -> Any:
    """A scheduler instance of the class named in a saved scheduler config."""
    import diffusers

    return getattr(diffusers, config["_class_name"]).from_config(config)


def personalize(base: str | Path, images_dir: Path, out_dir: Path, config: PersonalizeConfig,
                cancel: CancelToken | None = None) -> Iterator[Progress]:
    """Personalize ``base`` on the images in ``images_dir``; write the result into ``out_dir``.

    Yields Progress per optimisation step (payload: step, loss, lr) plus a few stage records
    (``payload["stage"]``); the output is loadable with ``load_personalized`` once the generator ends.
    """
    yield from Personalizer(base, images_dir, out_dir, config, cancel).run()


__all__ = ["DEFAULT_LEARNING_RATE", "EMBEDS_FILE", "LORA_FILE", "MANIFEST", "DEFAULT_STEPS", "METHODS", "PersonalizeConfig", "Personalizer",
           "inference_dtype", "is_personalized", "load_base_pipeline", "load_personalized", "personalize",
           "read_personalization"]
