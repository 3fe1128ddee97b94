"""Convert the upstream TAEF2 state dicts (``taef2_encoder.pth``, ``taef2_decoder.pth``) to the shipped form.

Writes ``encoder.safetensors``, ``decoder.safetensors`` and ``manifest.json`` (sha256 of each, source),
after checking that both load strictly into ``gwm_desktop.core.taef2``'s networks.

    python -m training.convert_taef2 --source ../shared/data/taef2 --out resources/taef2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import save_file

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.taef2 import MANIFEST, LatentAutoencoder, _read_state
from gwm_desktop.core.weights import sha256_file


def convert(source: Path, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    model = LatentAutoencoder()
    digests = {}
    for part, module in (("encoder", model.encoder), ("decoder", model.decoder)):
        state = _read_state(source, part)
        module.load_state_dict(state)  # strict: every key and shape must match
        target = out / f"{part}.safetensors"
        tensors = {k: v.contiguous() for k, v in state.items()}
        write_atomic(target, lambda temp, tensors=tensors: save_file(tensors, str(temp)))
        digests[target.name] = sha256_file(target)
    if (source / "LICENSE").exists():
        shutil.copyfile(source / "LICENSE", out / "LICENSE")
    manifest = {"format": "gwm-taef2-v1", "source": "madebyollin/taesd commit 5cccb12 (taef2_*.pth)",
                "files": digests}
    write_atomic(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return digests


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder with taef2_encoder.pth, taef2_decoder.pth")
    parser.add_argument("--out", type=Path, default=Path("resources/taef2"))
    args = parser.parse_args(argv)
    for name, digest in convert(args.source, args.out).items():
        print(f"{name}  {digest}")


if __name__ == "__main__":
    main()
