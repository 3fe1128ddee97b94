"""The personalization methods Phase 2 tests and their defaults: one home, read by the training code,
the CLI's help and the GUI's form. It imports neither torch nor diffusers and sits outside
``training.phase2``, so an app built without Phase 2 (``GWM_BUILD_LEAN``) still has it.

Also the one rule for which detectors a run fine-tunes: one per method, plus a "joint" one on every
method's images when there are several and ``joint`` is on; the joint one is what gets installed.
"""

from __future__ import annotations

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
JOINT = "joint"


def detector_sets(methods: tuple[str, ...] | list[str], joint: bool) -> dict[str, list[str]]:
    """{detector name: the methods whose images it is fine-tuned on}."""
    sets = {m: [m] for m in methods}
    if joint and len(methods) > 1:
        sets[JOINT] = list(methods)
    return sets


def installed_detector(methods: tuple[str, ...] | list[str], joint: bool) -> str:
    """The detector a run installs into a profile: the joint one when there is one, else the only method's."""
    return JOINT if JOINT in detector_sets(methods, joint) else methods[0]
