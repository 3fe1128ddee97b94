"""Blind side-by-side pairs, to judge a change of where G puts its watermark by eye.

LPIPS, the product's budget, is a mean over the image: it forgives one blotched face, so two models
that meet the same budget can differ plainly on skin. A viewer who does not know which copy is which
settles it:

    python -m training.blind_pairs make --base resources/models/default --candidate runs/x/model \\
        --data ../shared/data/paintings --p 0.05 --out runs/blind
    python -m training.blind_pairs score runs/blind --answers A,B,=,... [--clear 0,3]

``make`` protects each image with the evaluation key through the export path with both models and
writes one strip per image (the original, then copies A and B: a centre crop enlarged, A and B in an
order drawn per strip) as OUT/NN.png; the order is sealed in OUT.key.json, beside the folder, not in
it. ``--base none`` pits the candidate against the unprotected original: whether the watermark can be
seen at all at that budget (a viewer who cannot see it answers = or picks either at random). ``score``
reads the viewer's answers (which copy shows more: A, B or =, one per strip, in order;
``--clear`` lists the strips where the difference was plain) and counts them per model.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from collections import Counter
from pathlib import Path

from PIL import Image, ImageOps

from gwm_desktop.core.atomic import write_atomic
from gwm_desktop.core.devices import resolve_device
from gwm_desktop.core.image_io import EncodeOptions, load_image
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.watermark import Embedder
from gwm_desktop.core.weights import load_model
from training.datasets import list_images
from training.evaluate import EVAL_KEY


def on_white(image: Image.Image) -> Image.Image:
    """RGB as a viewer sees it: transparent areas over white."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, "white")
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def strip(original: Image.Image, first: Image.Image, second: Image.Image, crop: float = 0.5,
          zoom: int = 3, gap: int = 12) -> Image.Image:
    """The same centre crop (``crop`` of each side) of the three, enlarged ``zoom`` x, side by side."""
    width, height = original.size
    cw, ch = max(1, round(width * crop)), max(1, round(height * crop))
    box = ((width - cw) // 2, (height - ch) // 2, (width - cw) // 2 + cw, (height - ch) // 2 + ch)
    tiles = [on_white(t).crop(box).resize((cw * zoom, ch * zoom), Image.LANCZOS) for t in (original, first, second)]
    out = Image.new("RGB", (3 * cw * zoom + 2 * gap, ch * zoom), "grey")
    for i, tile in enumerate(tiles):
        out.paste(tile, (i * (cw * zoom + gap), 0))
    return out


def make(base: Path, candidate: Path, paths: list[Path], p: float, out: Path, seed: int = 0,
         device: str = "cpu") -> dict[str, dict[str, str]]:
    """Write the strips and the sealed key; returns the key (strip -> file and which model is A)."""
    torch_device = resolve_device(device)
    lpips_model = build_lpips(torch_device)
    embedders = {}
    for name, folder in (("base", base), ("candidate", candidate)):
        if name == "base" and str(folder) == "none":
            continue
        bundle = load_model(folder, torch_device)
        embedders[name] = Embedder(bundle.generator, message_from_key(EVAL_KEY, bundle.n_bits), lpips_model,
                                   torch_device)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give a new folder, so no earlier strip mixes with these")
    rng = random.Random(seed)
    order = list(paths)
    rng.shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    key = {}
    width = max(2, len(str(len(order) - 1)))   # names that sort as numbers: what ``score`` reads them in
    for index, path in enumerate(order):
        loaded = load_image(path)
        # as exported (PNG, transparency kept), as the artist would look at it
        copies = {name: Image.open(io.BytesIO(embedder.protect(loaded, p, EncodeOptions(format="png")).data))
                  for name, embedder in embedders.items()}
        first = "candidate" if rng.random() < 0.5 else "base"
        second = "base" if first == "candidate" else "candidate"
        name = f"{index:0{width}d}"
        with Image.open(path) as source:
            original = ImageOps.exif_transpose(source)
            copies.setdefault("base", original)   # --base none: the original itself
            strip(original, copies[first], copies[second]).save(out / f"{name}.png")
        key[name] = {"file": path.name, "A": first}
    sealed = {"base": str(base), "candidate": str(candidate), "p": p, "strips": key}
    write_atomic(out.with_name(out.name + ".key.json"), json.dumps(sealed, indent=1).encode("utf-8"))
    return key


def score(key: dict[str, dict[str, str]], answers: list[str], clear: set[str]) -> Counter:
    """Counts of 'base'/'candidate' judged the more visible ('... plain' where ``clear``), and 'same'."""
    if len(answers) != len(key):
        raise SystemExit(f"{len(answers)} answers for {len(key)} strips")
    counts: Counter = Counter()
    for name, answer in zip(sorted(key), answers, strict=True):
        if answer not in ("A", "B", "="):
            raise SystemExit(f"strip {name}: answer A, B or =, not {answer!r}")
        if answer == "=":
            counts["same"] += 1
            continue
        first = key[name]["A"]
        worse = first if answer == "A" else ("base" if first == "candidate" else "candidate")
        counts[worse + (" plain" if name in clear else " slight")] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.blind_pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("make", help="protect with both models and write the blind strips")
    build.add_argument("--base", type=Path, required=True,
                       help="the model judged against (e.g. the shipped one), or none: the original, unprotected")
    build.add_argument("--candidate", type=Path, required=True)
    build.add_argument("--data", type=Path, action="append", required=True, help="image folder (repeatable)")
    build.add_argument("--split", default="all", choices=("train", "calibration", "eval", "all"))
    build.add_argument("--max-images", type=int, default=0, help="per folder (0: all)")
    build.add_argument("--p", type=float, default=0.05, help="the budget both copies are made at")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--device", default="cpu")
    tally = sub.add_parser("score", help="count the viewer's answers per model")
    tally.add_argument("out", type=Path, help="the strips' folder (its key is OUT.key.json)")
    tally.add_argument("--answers", required=True, help="A, B or = per strip, comma-separated, in order")
    tally.add_argument("--clear", default="", help="comma-separated strip numbers where the difference was plain")
    args = parser.parse_args(argv)
    if args.command == "make":
        paths = []
        for folder in args.data:
            found = list_images([folder], args.split)
            paths += found[: args.max_images] if args.max_images else found
        if not paths:
            raise SystemExit("no images found in --data")
        key = make(args.base, args.candidate, paths, args.p, args.out, args.seed, args.device)
        print(f"{len(key)} strips in {args.out}; the order is sealed in {args.out.name}.key.json")
        return 0
    sealed = json.loads(args.out.with_name(args.out.name + ".key.json").read_text(encoding="utf-8"))
    width = len(next(iter(sealed["strips"]), "00"))
    clear = {f"{int(n):0{width}d}" for n in args.clear.split(",") if n.strip()}
    counts = score(sealed["strips"], [a.strip() for a in args.answers.split(",")], clear)
    print(json.dumps(dict(sorted(counts.items())), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
