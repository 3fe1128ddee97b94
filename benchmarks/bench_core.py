"""Protect and scan throughput as ratios to bare Pillow loops on the same files, and peak memory.

    python benchmarks/bench_core.py [--threads N] [--repeats 3]

- protect: Engine.protect_files (PNG output) vs a bare loop of Pillow decode + PNG encode;
- scan: Engine.scan_files vs a bare loop of Pillow decode (full ``load()``);
  both on 1 MP and 12 MP JPEGs made from a real painting (../shared/data) or a synthetic photo, and on
  a "detailed" 1 MP JPEG: the paintings tiled at their own resolution. The painting enlarged to 1 MP
  is smooth, so its JPEG decodes faster than one with a photo's detail, and its ratios are the harder
  bound;
- the detector's views of one working frame with the model's readings vs with its phase-registered
  view left out (``registration_peaks`` 0, the 15 readings of models before it): what that view costs;
- peak RSS of protecting one 64 MP image, in a fresh process.
Prints ratios (lower is better; 1.0 = as fast as the bare loop). Timings depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def source_image() -> Image.Image:
    paintings = sorted((ROOT.parent / "shared" / "data" / "paintings").glob("*.jpg"))
    if paintings:
        return Image.open(paintings[0]).convert("RGB")
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, 512)[None, :, None] * rng.uniform(0.3, 1, (1, 1, 3))
    return Image.fromarray(np.clip(base + rng.normal(0, 20, (384, 512, 3)), 0, 255).astype(np.uint8))


def detailed_image(width: int = 1200, height: int = 900) -> Image.Image:
    """The paintings' top-left 300 px squares tiled at their own resolution (a synthetic photo without them)."""
    paintings = sorted((ROOT.parent / "shared" / "data" / "paintings").glob("*.jpg"))
    if not paintings:
        return source_image().resize((width, height), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (width, height))
    for index in range((width // 300) * (height // 300)):
        with Image.open(paintings[index % len(paintings)]) as painting:
            tile = painting.convert("RGB").crop((0, 0, 300, 300))
        canvas.paste(tile, ((index % (width // 300)) * 300, (index // (width // 300)) * 300))
    return canvas


def make_jpegs(folder: Path, megapixels: float, count: int, detailed: bool = False) -> list[Path]:
    image = detailed_image() if detailed else source_image()
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    big = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    paths = []
    for i in range(count):
        path = folder / f"{megapixels:g}mp{'_detailed' if detailed else ''}_{i}.jpg"
        big.rotate(0 if i % 2 == 0 else 180).save(path, quality=92)
        paths.append(path)
    return paths


def bare_decode_encode(paths: list[Path]) -> None:
    for path in paths:
        with Image.open(path) as image:
            image.load()
            image.save(io.BytesIO(), format="PNG")


def bare_decode(paths: list[Path]) -> None:
    for path in paths:
        with Image.open(path) as image:
            image.load()


def timed(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def timed_pair(bare: Callable[[], object], ours: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best times of ``bare`` and ``ours``, run alternately: on a shared machine whose speed drifts, a
    ratio of two timings taken minutes apart can move by half (seen here), one of interleaved runs less."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for index, fn in enumerate((bare, ours)):
            start = time.perf_counter()
            fn()
            best[index] = min(best[index], time.perf_counter() - start)
    return best[0], best[1]


def peak_rss_protect(path: Path, out: Path, threads: int) -> float:
    code = (
        f"import resource, sys; sys.path.insert(0, {str(ROOT)!r})\n"
        f"import torch; torch.set_num_threads({threads})\n"
        "from gwm_desktop.core.engine import Engine\n"
        "from gwm_desktop.core.profiles import ProfileStore\n"
        "from gwm_desktop.core.image_io import EncodeOptions\n"
        f"e = Engine(device='cpu'); prof = ProfileStore({str(out / 'home')!r}).get_or_create_default()\n"
        f"items = [p.payload for p in e.protect_files([{str(path)!r}], {str(out / 'out64')!r}, prof, 0.05, "
        "EncodeOptions(format='png'))]\n"
        "assert items[0].ok, items[0].error\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def views_cost(detector, repeats: int) -> None:
    """decode_views on one frame, as shipped and without the phase-registered view (restored after)."""
    import torch

    frame = torch.rand(1, 3, detector.working_size, detector.working_size)
    shipped_peaks, times = detector.registration_peaks, {}
    try:
        for peaks in dict.fromkeys((shipped_peaks, 0)):
            detector.registration_peaks = peaks
            detector.decode_views(frame)  # warm up
            times[detector.view_count] = timed(lambda: [detector.decode_views(frame) for _ in range(10)], repeats) / 10
    finally:
        detector.registration_peaks = shipped_peaks
    (shipped, ours), *rest = times.items()
    line = f"detector views: {shipped} readings {ours * 1000:.1f} ms/frame"
    for readings, seconds in rest:
        line += f"; {readings} readings {seconds * 1000:.1f} ms ({ours / seconds:.2f}x)"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-64mp", action="store_true")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from gwm_desktop.core.engine import Engine
    from gwm_desktop.core.image_io import EncodeOptions
    from gwm_desktop.core.profiles import ProfileStore

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        engine = Engine(device="cpu")
        profile = ProfileStore(tmp_path / "home").get_or_create_default()
        print(f"device: {engine.device_description}")
        for megapixels, count, detailed in ((1.0, 6, False), (1.0, 6, True), (12.0, 2, False)):
            name = f"{megapixels:g} MP{' detailed' if detailed else ''}"
            folder = tmp_path / name.replace(" ", "_")
            folder.mkdir()
            paths = make_jpegs(folder, megapixels, count, detailed)

            def protect(paths: list[Path] = paths, folder: Path = folder) -> None:
                items = [p.payload for p in engine.protect_files(paths, folder / "out", profile,
                                                                 0.05, EncodeOptions(format="png"))]
                assert all(i.ok for i in items), [i.error for i in items]

            def scan(paths: list[Path] = paths) -> None:
                results = [p.payload for p in engine.scan_files(paths, profile)]
                assert all(r.error is None for r in results)

            protect()  # warm up (first calls allocate)
            bare_pe, ours_p = timed_pair(lambda paths=paths: bare_decode_encode(paths), protect, args.repeats)
            bare_d, ours_s = timed_pair(lambda paths=paths: bare_decode(paths), scan, args.repeats)
            print(f"{name:>14}  protect {ours_p / count * 1000:7.0f} ms/img = {ours_p / bare_pe:5.2f}x "
                  f"bare decode+PNG encode ({bare_pe / count * 1000:.0f} ms)")
            print(f"{name:>14}  scan    {ours_s / count * 1000:7.1f} ms/img = {ours_s / bare_d:5.2f}x "
                  f"bare decode ({bare_d / count * 1000:.1f} ms)")
        views_cost(engine.shipped().detector, args.repeats)
        if not args.skip_64mp:
            big = make_jpegs(tmp_path, 64.0, 1)[0]
            rss = peak_rss_protect(big, tmp_path, args.threads or torch.get_num_threads())
            print(f"64 MP protect peak RSS: {rss / 1024:.2f} GB (own process: torch, model, LPIPS, image)")
    print(f"this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024:.2f} GB")


if __name__ == "__main__":
    main()
