"""The isotropic, mirror-symmetric watermark and the scanner's frame registration (core/registration.py).

A trainer's flip, square crop or bucket only moves this watermark, and a random crop also magnifies
it; the detector finds both without the key. Tests use 1/f noise images and an untrained G (plane-wave
textures), read by the matched filter alone, so they check the geometry, not training.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gwm_desktop.core.agreement import matched_agreement
from gwm_desktop.core.detect import NEGATIVE_BANKS
from gwm_desktop.core.generator import DEFAULT_BITS
from gwm_desktop.core.image_io import load_rgb_resized
from gwm_desktop.core.keys import message_from_key, random_messages
from gwm_desktop.core.models import READINGS, REGISTRATION_PEAKS, networks_for_size
from gwm_desktop.core.registration import (
    PHASE_ZOOMS,
    coherence_frame,
    estimate_scale,
    shift_energy,
    shift_scores,
)
from gwm_desktop.core.spectrum import (
    SCAN_ZOOMS,
    SMOOTHING_MARGIN,
    band_spectrum,
    band_width,
    box_mean,
    luma,
    rotate_about_centre,
    whiten,
    zoom_out,
)
from training.matched_filter import with_matched_filter

OWN_KEY, OTHER_KEY = b"registration-test-key-a" + bytes(9), b"registration-test-key-b" + bytes(9)


def natural_image(seed: int, height: int, width: int) -> torch.Tensor:
    """(1, 3, H, W) stand-in photograph: 1/f noise, mid-grey."""
    generator = torch.Generator().manual_seed(seed)
    fy, fx = torch.fft.fftfreq(height), torch.fft.fftfreq(width)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).clamp_min(1.0 / max(height, width))
    image = torch.fft.ifft2(torch.fft.fft2(torch.randn(3, height, width, generator=generator)) / radius).real
    return (0.5 + 0.15 * image / image.std()).clamp(0, 1)[None]


def isotropic_networks():
    generator, detector = networks_for_size()
    return with_matched_filter(generator, detector)


def matched(detector, image: torch.Tensor, message: torch.Tensor) -> float:
    """The best view's matched-filter agreement (the CNN is untrained here)."""
    evidence = detector.decode_views(image)[..., DEFAULT_BITS:]
    return float(matched_agreement(evidence, message.view(1, 1, -1)).amax())


def test_every_texture_is_mirror_symmetric_so_a_flip_is_a_shift():
    generator, _ = isotropic_networks()
    textures = generator.textures()
    assert torch.allclose(textures, textures.flip(-1).roll(1, dims=-1), atol=1e-6)


def test_isotropic_watermark_tiles_square_pixels_of_the_shorter_side():
    generator, _ = isotropic_networks()
    message = message_from_key(OWN_KEY, DEFAULT_BITS)[None]
    with torch.no_grad():
        w = generator(natural_image(0, 256, 384), message)
    assert w.shape[-2:] == (256, 384)
    pattern = generator.pattern(message, 256, 384)
    tile = generator.tile
    assert torch.allclose(pattern[..., :tile], pattern[..., tile:2 * tile])        # same period across
    assert torch.allclose(pattern[..., :tile, :], pattern[..., tile:2 * tile, :])  # and down


def test_the_scanner_reads_the_watermark_after_flip_square_crop_and_shift_but_not_another_key():
    generator, detector = isotropic_networks()
    own, other = (message_from_key(key, DEFAULT_BITS) for key in (OWN_KEY, OTHER_KEY))
    for seed in range(3):
        x = natural_image(seed, 256, 384)
        with torch.no_grad():
            marked = (x + generator(x, own[None])).clamp(0, 1)
            stranger = (x + generator(x, other[None])).clamp(0, 1)
        moved = {"as is": marked, "flip": marked.flip(-1), "square crop": marked[..., :, 37:293],
                 "shift": marked[..., :, 53:]}
        found = {name: matched(detector, image, own) for name, image in moved.items()}
        null = max(matched(detector, x, own), matched(detector, stranger, own))
        assert min(found.values()) > null + 0.15, (found, null)


def test_a_random_crops_magnification_is_estimated_and_undone():
    """The estimate is within a few per cent; the matched filter needs the zoom to about a pixel of the
    frame (measured: 0.625 reads, 0.62 and 0.63 do not), so a crop's registered view rests on the CNN,
    trained on zooms jittered by 2% (``distortion_layer``), and the phase is read only at the exact zoom."""
    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    x = natural_image(4, 256, 384)
    with torch.no_grad():
        marked = (x + generator(x, own[None])).clamp(0, 1)
    crop = marked[..., 40:40 + 160, 90:90 + 230]             # keeps 160 / 256 of the shorter side
    frame = F.interpolate(crop[..., :, 35:195], size=(256, 256), mode="bilinear", antialias=True)
    white = whiten(band_spectrum(luma(frame), band_width(detector.spectrum_crop)), detector.spectrum_crop)
    assert abs(float(estimate_scale(white, detector.components)[0]) / (160 / 256) - 1) < 0.04
    with torch.no_grad():
        registered = detector._evidence_of_luma(zoom_out(luma(frame), 160 / 256))[..., DEFAULT_BITS:]
    assert float(matched_agreement(registered, own.view(1, 1, -1)).amax()) > 0.4


def test_an_off_centre_crops_zoom_is_found_from_the_phases_and_read_at_a_shift_peak():
    """The power's estimate above is a few per cent off; the phases' (``coherence_frame``) about 1%,
    and the registered views, read at the shift search's best peaks, find the key there."""
    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    x = natural_image(4, 256, 384)
    with torch.no_grad():
        marked = (x + generator(x, own[None])).clamp(0, 1)
        frame = F.interpolate(marked[..., 40:40 + 160, 125:125 + 160], size=(256, 256), mode="bilinear",
                              antialias=True)
        zoom = float(coherence_frame(detector.phase_alignment(128), luma(frame))[0][0])
        per_view = matched_agreement(detector.decode_views(frame)[..., DEFAULT_BITS:], own.view(1, 1, -1))[0]
    assert abs(zoom / (160 / 256) - 1) < 0.015, zoom
    assert per_view.shape[0] == detector.view_count == (len(SCAN_ZOOMS) + 1) * READINGS + 1 + 4 * REGISTRATION_PEAKS
    unregistered = len(SCAN_ZOOMS) * READINGS
    assert float(per_view[unregistered:].max()) > 0.4 > float(per_view[:unregistered].max()), per_view


def test_the_phases_choose_the_unturned_candidate_for_a_crop_the_power_turned_wrongly():
    """The power's turn estimate can turn an unturned crop by degrees; the phases line up on the view
    as it is, pick it, and find its zoom there. Asked to search the turned view alone, they cannot."""
    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    x = natural_image(4, 256, 384)
    with torch.no_grad():
        marked = (x + generator(x, own[None])).clamp(0, 1)
        frame = luma(F.interpolate(marked[..., 40:40 + 160, 125:125 + 160], size=(256, 256), mode="bilinear",
                                   antialias=True))
        candidates = torch.cat([rotate_about_centre(frame, torch.tensor([4.5])), frame], dim=1)
        alignment = detector.phase_alignment(128)
        zoom, choice = coherence_frame(alignment, candidates)
        _, alone = coherence_frame(alignment, candidates, tried=torch.tensor([[True, False]]))
    assert int(choice[0]) == 1 and int(alone[0]) == 0
    assert abs(float(zoom[0]) / (160 / 256) - 1) < 0.015, zoom


def test_the_shift_energy_is_each_textures_correlation_squared_and_summed_whatever_the_keys_signs():
    """``shift_energy``'s expansion (half the squared-phase score plus a term along each axis) is the
    textures' matched-filter energy at every candidate shift, less one constant per image; flipping a
    texture's sign (another key) leaves it as it is."""
    _, detector = isotropic_networks()
    components = detector.components
    y = torch.randn(3, components.bins.shape[0], dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    angle = 2 * math.pi * (components.bins.float() @ components.shifts.T) / components.working_size
    aligned = (y[:, :, None] * torch.polar(torch.ones_like(angle), -angle)[None]).real
    per_texture = torch.zeros(3, components.parity.shape[0], aligned.shape[-1]).index_add_(1, components.texture, aligned)
    direct = (per_texture**2).sum(1)
    gap = direct - shift_energy(y, components)
    assert float((gap - gap.mean(-1, keepdim=True)).abs().max()) < 1e-4 * float(direct.abs().max())
    signs = torch.where(components.texture % 3 == 0, -1.0, 1.0)
    assert torch.allclose(shift_energy(y * signs, components), shift_energy(y, components), atol=1e-4)


def alignment_from_the_whole_band(detector, view: torch.Tensor) -> float:
    """The phase search's score as defined: the view's band, each texture bin's phase over its local
    mean power, squared and aligned over every other shift (the slow route ``PhaseAlignment`` skips)."""
    crop, margin = detector.spectrum_crop, SMOOTHING_MARGIN
    band = band_spectrum(view, band_width(crop))[0, 0]
    local = box_mean(band.real**2 + band.imag**2, 2 * margin + 1)
    components = detector.components
    rows, cols = components.bins[:, 1] + crop // 2, components.bins[:, 0] + crop // 2
    template = detector._template_spectra(band.real)[0][components.texture, rows, cols]
    normalised = band[rows + margin, cols + margin].conj() * template / template.abs() / local[rows, cols].sqrt()
    return float(shift_scores(normalised[None], components, step=2).amax())


def test_the_phase_search_scores_each_zoom_as_the_whole_band_would():
    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    with torch.no_grad():
        x = natural_image(7, 256, 256)
        frame = F.interpolate((x + generator(x, own[None])).clamp(0, 1)[..., 30:230, 20:220], size=(256, 256),
                              mode="bilinear", antialias=True)
        small = F.interpolate(luma(frame), size=(128, 128), mode="bilinear", antialias=True)
        which = torch.tensor([[0, 40, 85, 120]])
        fast = detector.phase_alignment(128)(small, which)[0]
        slow = [alignment_from_the_whole_band(detector, zoom_out(small, PHASE_ZOOMS[k])) for k in which[0].tolist()]
    assert torch.allclose(fast, torch.tensor(slow), rtol=1e-3), (fast, slow)


def test_fewer_shift_peaks_read_the_leading_readings():
    """The peaks come best first, so a scan at fewer peaks (the verdict's) is a prefix of the scan's."""
    from gwm_desktop.core.verdict import VERDICT_PEAKS

    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    x = natural_image(5, 256, 384)
    with torch.no_grad():
        marked = (x + generator(x, own[None])).clamp(0, 1)
        frame = F.interpolate(marked[..., 30:30 + 180, 100:100 + 180], size=(256, 256), mode="bilinear", antialias=True)
        wide = detector.decode_views(frame)
        narrow = detector.decode_views(frame, peaks=VERDICT_PEAKS)
    assert wide.shape[1] == detector.view_count
    assert narrow.shape[1] == detector.view_count - 4 * (detector.registration_peaks - VERDICT_PEAKS) < wide.shape[1]
    assert torch.allclose(wide[:, :narrow.shape[1]], narrow, atol=1e-5)


def test_a_bank_from_another_registration_is_refused():
    """A bank holds one scanner's views; read against another's, its threshold would not be the FPR."""
    from gwm_desktop.core.detect import CalibrationMissing, Scanner

    _, detector = isotropic_networks()
    message = message_from_key(OWN_KEY, DEFAULT_BITS)
    old_bank = {name: torch.zeros(10, (len(SCAN_ZOOMS) + 1) * READINGS, 2 * DEFAULT_BITS) for name in NEGATIVE_BANKS}
    with pytest.raises(CalibrationMissing, match="recalibrate"):
        Scanner(detector, message, old_bank)


def test_a_rotation_about_the_centre_is_estimated_and_turned_back():
    """An editor's or a trainer's small turn (with the crop that removes the corners, as SPEC's
    rotation) moves every texture off its bin; the registered view finds the angle to a fraction of a
    degree and reads the key again, where the unregistered views do not."""
    from gwm_desktop.core.registration import estimate_frame

    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    x = natural_image(6, 256, 256)
    with torch.no_grad():
        marked = (x + generator(x, own[None])).clamp(0, 1)
    picture = Image.fromarray((marked[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    turned = picture.rotate(4.0, resample=Image.Resampling.BICUBIC).crop((18, 18, 238, 238))
    frame = torch.from_numpy(np.array(turned.resize((256, 256), Image.Resampling.LANCZOS))).permute(2, 0, 1)[None]
    frame = frame.float() / 255
    white = whiten(band_spectrum(luma(frame), band_width(detector.spectrum_crop)), detector.spectrum_crop)
    zoom, angle = estimate_frame(white, detector.components)
    # PIL turns counter-clockwise on screen: -4 degrees in the frame's own (y down) coordinates
    assert abs(float(angle[0]) + 4.0) < 0.3 and abs(float(zoom[0]) / (220 / 256) - 1) < 0.03
    with torch.no_grad():
        views = detector.decode_views(frame)[..., DEFAULT_BITS:]
    per_view = matched_agreement(views, own.view(1, 1, -1))[0]
    unregistered = len(SCAN_ZOOMS) * READINGS                   # the views before the registered ones
    registered, others = float(per_view[unregistered:].max()), float(per_view[:unregistered].max())
    assert registered > 0.4 and registered > others + 0.2, (registered, others)


def test_random_keys_stay_below_the_true_key_on_a_searched_reading():
    """The searches take a maximum: the null is raised, but another key does not reach the true one."""
    generator, detector = isotropic_networks()
    own = message_from_key(OWN_KEY, DEFAULT_BITS)
    x = natural_image(5, 256, 320)
    with torch.no_grad():
        marked = (x + generator(x, own[None])).clamp(0, 1).flip(-1)
    evidence = detector.decode_views(marked)[..., DEFAULT_BITS:]
    others = random_messages(200, DEFAULT_BITS, torch.Generator().manual_seed(0))
    null = matched_agreement(evidence.expand(200, -1, -1), others[:, None]).amax(-1)
    assert float(matched_agreement(evidence, own.view(1, 1, -1)).amax()) > float(null.max()) + 0.2


def test_evidence_for_training_is_the_scanners_first_view():
    _, detector = isotropic_networks()
    x = natural_image(6, 256, 256).requires_grad_(True)
    evidence = detector.evidence(x)
    assert evidence.shape == (1, 5, 2 * DEFAULT_BITS)
    assert torch.allclose(evidence.detach(), detector.decode_views(x.detach())[:, :5], atol=1e-4)
    assert detector.decode_views(x.detach()).shape == (1, detector.view_count, 2 * DEFAULT_BITS)


def test_the_loader_reads_the_centred_square_of_the_shorter_side(tmp_path):
    array = np.zeros((100, 300, 3), dtype=np.uint8)
    array[:, 100:200] = 255                                   # only the centred square is white
    path = tmp_path / "wide.png"
    Image.fromarray(array).save(path)
    square = load_rgb_resized(path, (50, 50), centre_square=True)
    assert square.shape == (50, 50, 3) and square.min() > 240
    assert load_rgb_resized(path, (50, 50)).min() == 0        # the stretched read keeps the black sides
