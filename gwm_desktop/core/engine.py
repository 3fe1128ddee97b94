"""The one entry point the CLI, the GUI and the tests share: a loaded model on a device, plus the
protect and scan jobs (generators of ``Progress``) that run it over files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from gwm_desktop.core.atomic import write_new
from gwm_desktop.core.detect import DEFAULT_FPR, Scanner
from gwm_desktop.core.devices import describe_device, resolve_device
from gwm_desktop.core.flat_colour import is_flat_colour
from gwm_desktop.core.image_io import (
    EncodeOptions,
    ImageLoadError,
    iter_image_files,
    load_image,
    output_names,
)
from gwm_desktop.core.jobs import CancelToken, Progress
from gwm_desktop.core.keys import message_from_key
from gwm_desktop.core.lpips_metric import build_lpips
from gwm_desktop.core.profiles import Profile
from gwm_desktop.core.protection_log import record_export
from gwm_desktop.core.verdict import DEFAULT_ALPHA, DEFAULT_NULL_KEYS, verdict_job
from gwm_desktop.core.watermark import CalibrationError, Embedder
from gwm_desktop.core.weights import ModelBundle, load_model
from gwm_desktop.resources import earlier_model_dir, resource_path


def default_model_dir() -> Path:
    return resource_path("models", "default")


@dataclass
class ProtectItem:
    """What happened to one input of a protect job."""

    source: Path
    output: Path | None = None
    error: str | None = None
    lpips: float | None = None
    psnr: float | None = None
    strength: float | None = None
    seconds: float = 0.0
    flat_colour: bool = False   # core.flat_colour: the watermark can show on it at any level

    @property
    def ok(self) -> bool:
        return self.error is None


def same_watermark(a: ModelBundle, b: ModelBundle) -> bool:
    """Whether two models' generators make the same watermark (Phase 2 tunes D and leaves G as it was)."""
    ta, tb = a.generator.textures().detach(), b.generator.textures().detach()
    return ta.shape == tb.shape and a.generator.band == b.generator.band and bool(torch.equal(ta.cpu(), tb.cpu()))


class Engine:
    """A verified model on one device. Heavy to build (loads torch and LPIPS): build once, reuse."""

    def __init__(self, model_dir: Path | None = None, device: str = "auto") -> None:
        self.device = resolve_device(device)
        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.bundle: ModelBundle = load_model(self.model_dir, self.device)
        self.lpips = build_lpips(self.device)
        self._profile_bundles: dict[Path, ModelBundle] = {}
        self._earlier_bundles: dict[str, ModelBundle] = {}
        # Scanners by (profile key, FPR, earlier model): building one draws the random keys (or reads the
        # whole calibration bank), which a scan of a few images would otherwise pay on every call.
        self._scanners: dict[tuple[bytes, float, str | None], tuple[ModelBundle, Scanner]] = {}

    @property
    def device_description(self) -> str:
        return describe_device(self.device)

    def bundle_for(self, profile: Profile, earlier: str | None = None) -> ModelBundle:
        """The shipped model that made the watermark looked for (this one, or ``earlier``, an
        ``EARLIER_MODELS`` name), or the profile's own fine-tuned detector when it was tuned from that
        model: a detector tuned from another model's textures cannot read this one's watermark (after an
        upgrade, the profile's detector still serves scans for the earlier model it came from)."""
        shipped = self.shipped(earlier)
        folder = profile.detector_folder
        if folder is None:
            return shipped
        if folder not in self._profile_bundles:
            self._profile_bundles[folder] = load_model(folder, self.device)
        own = self._profile_bundles[folder]
        return own if same_watermark(own, shipped) else shipped

    def shipped(self, earlier: str | None = None) -> ModelBundle:
        """This engine's shipped model, or an earlier one (verified and loaded on first use) for the
        exports it made."""
        if earlier is None:
            return self.bundle
        if earlier not in self._earlier_bundles:
            folder = earlier_model_dir(earlier)
            if folder is None:
                raise FileNotFoundError(f"this build does not include the {earlier} model (resources/models/{earlier})")
            self._earlier_bundles[earlier] = load_model(folder, self.device)
        return self._earlier_bundles[earlier]

    def invalidate_profile(self, profile: Profile) -> None:
        """Forget a cached profile detector (after one is installed or rolled back)."""
        self._profile_bundles.pop(profile.detector_path, None)
        self._scanners.clear()

    def embedder(self, profile: Profile) -> Embedder:
        message = message_from_key(profile.key, self.bundle.n_bits)
        return Embedder(self.bundle.generator, message, self.lpips, self.device)

    def scanner(self, profile: Profile, fpr: float = DEFAULT_FPR, earlier: str | None = None) -> Scanner:
        bundle = self.bundle_for(profile, earlier)
        cached = self._scanners.get((profile.key, fpr, earlier))
        if cached is None or cached[0] is not bundle:
            message = message_from_key(profile.key, bundle.n_bits)
            cached = (bundle, Scanner(bundle.detector, message, bundle.calibration, self.device, fpr,
                                      key_independent=bundle.key_independent))
            self._scanners[(profile.key, fpr, earlier)] = cached
        return cached[1]

    def protect_files(self, inputs: Iterable[str | Path], out_dir: Path, profile: Profile, p: float,
                      options: EncodeOptions | None = None, cancel: CancelToken | None = None,
                      record: bool = True) -> Iterator[Progress]:
        """Protect every image in ``inputs`` into ``out_dir``; one Progress (payload ProtectItem) per file.

        Originals are only read. Each output is verified against the budget, then written atomically,
        so a cancel or crash leaves either a complete file or none. An output name that exists (an
        earlier export, or another run writing into the same folder at the same time) is never
        overwritten: the file gets the next free name, 'name (1).png', and the item reports it. Each
        export is recorded in the profile's protection log (``core.protection_log``) unless ``record``
        is off (the app's own throwaway copies, which are no export of the artist's).
        """
        options = options or EncodeOptions()
        cancel = cancel or CancelToken()
        out_dir = Path(out_dir)
        # An output folder inside an input folder must not feed last run's exports back in.
        out_root = Path(os.path.realpath(out_dir))
        files = [f for f in iter_image_files(inputs, empty_folders=True)
                 if not Path(os.path.realpath(f)).is_relative_to(out_root)]
        out_dir.mkdir(parents=True, exist_ok=True)
        embedder = self.embedder(profile)
        taken: set[Path] = set()
        for index, source in enumerate(files, start=1):
            if cancel.cancelled:
                return
            started = time.monotonic()
            item = ProtectItem(source)
            try:
                loaded = load_image(source)
                result = embedder.protect(loaded, p, options)
                if cancel.cancelled:
                    return
                # The names skip every input (and the link in write_new never replaces a file at all).
                target = write_new(output_names(source, out_dir, result.format, taken), result.data)
                taken.add(target)
                if record:
                    try:
                        record_export(profile.folder, p, target, result.data)
                    except OSError as error:  # every export reported as done is in the log
                        target.unlink(missing_ok=True)
                        raise OSError(f"not exported: the protection log could not record it ({error})") from None
                item.output, item.lpips, item.psnr, item.strength = target, result.lpips, result.psnr, result.strength
                item.flat_colour = is_flat_colour(loaded.rgb, loaded.alpha)
            except FileNotFoundError:
                item.error = "no such file"
            except (ImageLoadError, CalibrationError, ValueError, OSError) as error:
                item.error = str(error) or type(error).__name__
            item.seconds = time.monotonic() - started
            yield Progress(index, len(files), source.name, item)

    def scan_files(self, inputs: Iterable[str | Path], profile: Profile, fpr: float = DEFAULT_FPR,
                   cancel: CancelToken | None = None, earlier: str | None = None) -> Iterator[Progress]:
        """Score every image in ``inputs``; one Progress (payload ScanResult) per file. ``earlier``: look
        for the watermark an earlier shipped model made (``EARLIER_MODELS``) instead of this one's."""
        files = list(iter_image_files(inputs, empty_folders=True))
        yield from self.scanner(profile, fpr, earlier).scan_paths(files, len(files), cancel)

    def verdict_files(self, inputs: Iterable[str | Path], profile: Profile, alpha: float = DEFAULT_ALPHA,
                      null_keys: int = DEFAULT_NULL_KEYS, cancel: CancelToken | None = None,
                      earlier: str | None = None) -> Iterator[Progress]:
        """The model-level verdict over every image in ``inputs`` (``core.verdict.verdict_job``).

        Always a shipped model's detector (this one, or ``earlier``): a profile's fine-tuned detector
        learned this key's watermark, so its evidence depends on the key and the random-key comparison
        would not hold.
        """
        bundle = self.shipped(earlier)
        files = list(iter_image_files(inputs))
        message = message_from_key(profile.key, bundle.n_bits)
        yield from verdict_job(bundle.detector, message, files, self.device, alpha, null_keys, cancel=cancel)


def set_torch_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
