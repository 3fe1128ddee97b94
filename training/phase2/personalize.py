"""Personalization of a text-to-image model on one subject's images: DreamBooth, LoRA DreamBooth, Textual Inversion.

Phase 2 personalizes a public model twice, on the subject's clean images X and on its watermarked
images X_w, the way a forger would (SPEC section 2). The loop is the one of diffusers' own training
examples, run through ``accelerate.Accelerator`` (``accelerate launch --multi_gpu`` spreads it over
GPUs; bf16/fp16 on CUDA, fp32 on MPS and CPU). What differs per method lives in ``strategies``; the
default steps and learning rates in ``training.phase2_methods``.

The VAE is frozen, so each image's latent distribution is encoded once and sampled every step. All
randomness (batches, noise, timesteps) comes from one CPU generator saved in checkpoints, so a
resumed run continues exactly. Output folder: ``personalization.json`` (written last: a folder
without it is incomplete), the method's weights, ``validation/`` samples and ``checkpoints/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.jobs import CancelToken, Progress
from training.checkpoints import latest_checkpoint, save_checkpoint
from training.datasets import list_images
from training.phase2.cache import same_training
from training.phase2.latent_data import TrainingSet, build_latent_set
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
from training.phase2.personalize_config import PersonalizeConfig
from training.phase2.strategies import STRATEGIES, place
from training.phase2_methods import DEFAULT_LEARNING_RATE, DEFAULT_STEPS, METHODS


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
        self.strategy = STRATEGIES[config.method]
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
        place(self.vae, self.device, self.weight_dtype)
        trainable = self.strategy.setup(self)
        lr = cfg.resolved_learning_rate(self.accelerator.num_processes)
        self.learning_rate = lr
        weight_decay = cfg.adam_weight_decay if self.strategy.weight_decay else 0.0
        self.optimizer = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay, eps=1e-8)
        self.lr_schedule = get_scheduler(cfg.lr_scheduler, optimizer=self.optimizer,
                                         num_warmup_steps=cfg.lr_warmup_steps * self.accelerator.num_processes,
                                         num_training_steps=self.total_steps * self.accelerator.num_processes)
        self.model, self.optimizer, self.lr_schedule = self.accelerator.prepare(
            self.model, self.optimizer, self.lr_schedule)

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
        if self.strategy.encodes_prompts_once:
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
        return self.strategy.trainable_state(self, self.accelerator.unwrap_model(self.model))

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.strategy.load_trainable_state(self, self.accelerator.unwrap_model(self.model), state)

    def checkpoint_state(self) -> dict[str, Any]:
        return {"step": self.step, "method": self.config.method, "trainable": self.trainable_state(),
                "optimizer": self.optimizer.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                "rng": self.rng.get_state(), "config": asdict(self.config),
                "augmentation": self.config.augmentation()}

    def _resume(self) -> None:
        which = self.config.resume
        folder = self.out_dir / "checkpoints"
        path = latest_checkpoint(folder) if which == "latest" else Path(which or "")
        if path is None:
            return  # "latest" with nothing saved yet: a fresh start, as diffusers' scripts do
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["method"] != self.config.method:
            raise ValueError(f"checkpoint {path} is a {state['method']} run, not {self.config.method}")
        if which == "latest" and not same_training(state, self.config):
            return  # left by a run with other settings (say, other augmentations): start afresh
        self.load_trainable_state(state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.rng.set_state(state["rng"])
        self.step = int(state["step"])

    # -- one step ------------------------------------------------------------------------------------
    def _noisy_batch(self, latent_set: TrainingSet) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy latents, timesteps, target, indices) for one micro-batch drawn from ``latent_set``."""
        bsz = self.config.batch_size
        indices = torch.randint(0, len(latent_set), (bsz,), generator=self.rng)
        latents = latent_set.latents(self.vae, indices, self.rng) * self.vae.config.scaling_factor
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
            hidden = self.strategy.hidden_states(self, set_index, len(noisy))
            with self.accelerator.autocast():
                prediction = self.strategy.predict(self, noisy, timesteps, hidden)
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
                self.strategy.after_step(self)
            total += float(loss.detach()) / self.config.gradient_accumulation
        return total

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
            files = self.strategy.save_weights(self, self.accelerator.unwrap_model(self.model), staging)
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
                        "images_dir": str(self.images_dir), "files": files, "config": asdict(cfg),
                        "augmentation": cfg.augmentation()}
            write_atomic(self.out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _validation(self, folder: Path) -> Iterator[Progress]:
        """Samples from the trained model in memory: ``load_personalized`` must reproduce them from disk."""
        from diffusers import StableDiffusionPipeline

        from training.phase2.synthesize import synthesize

        cfg = self.config
        model = self.accelerator.unwrap_model(self.model)
        unet, text_encoder = self.strategy.sampling_parts(self, model)
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


__all__ = ["DEFAULT_LEARNING_RATE", "DEFAULT_STEPS", "EMBEDS_FILE", "LORA_FILE", "MANIFEST", "METHODS",
           "PersonalizeConfig", "Personalizer", "inference_dtype", "is_personalized", "load_base_pipeline", "load_personalized", "personalize",
           "read_personalization"]
