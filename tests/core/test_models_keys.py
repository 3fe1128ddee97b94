import torch

from gwm_desktop.core.generator import DEFAULT_BITS, WatermarkGenerator
from gwm_desktop.core.keys import message_from_key, new_key, random_messages
from gwm_desktop.core.models import WatermarkDetector
from gwm_desktop.core.spectrum import whitened_spectrum


def test_message_is_deterministic_balanced_and_key_specific():
    key = new_key()
    m = message_from_key(key, DEFAULT_BITS)
    assert torch.equal(m, message_from_key(key, DEFAULT_BITS))
    assert int((m > 0).sum()) == DEFAULT_BITS // 2
    assert not torch.equal(m, message_from_key(new_key(), DEFAULT_BITS))
    batch = random_messages(5, DEFAULT_BITS)
    assert batch.shape == (5, DEFAULT_BITS) and torch.all((batch > 0).sum(1) == DEFAULT_BITS // 2)


def test_generator_and_detector_shapes():
    g, d = WatermarkGenerator(), WatermarkDetector()
    x = torch.rand(2, 3, 256, 256)
    w = g(x, random_messages(2, DEFAULT_BITS))
    assert w.shape == x.shape
    assert abs(float(w.detach().mean())) < 1e-3
    assert d(x).shape == (2, DEFAULT_BITS)
    assert d(torch.rand(1, 3, 300, 200)).shape == (1, DEFAULT_BITS)  # other sizes are resized


def test_whitened_spectrum_finds_a_texture_at_the_same_place_wherever_it_sits():
    # Why D survives crops and shifts: a texture's peak stays at its frequency, not its position.
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    peaks = []
    for shift in (0.0, 17.0, 101.0):
        texture = 0.5 + 0.02 * torch.cos(2 * torch.pi * (8 * (xx + shift) + 3 * yy) / 128)
        spectrum = whitened_spectrum(texture.expand(1, 3, 256, 256), 96)[0, 0]
        row, col = divmod(int(spectrum.argmax()), 96)
        peaks.append(max((row - 48, col - 48), (48 - row, 48 - col)))  # a real image's spectrum is symmetric
    assert peaks[0] == peaks[1] == peaks[2] == (6, 16)


def test_scan_views_undo_a_crop_zoom_and_take_the_best_view():
    from gwm_desktop.core.spectrum import SCAN_ZOOMS, zoom_out
    from gwm_desktop.core.textures import pattern_frequencies

    d = WatermarkDetector()
    x = torch.rand(2, 3, 256, 256)
    views = d.decode_views(x)
    assert views.shape == (2, len(SCAN_ZOOMS), DEFAULT_BITS)
    assert torch.allclose(views[:, 0], d(x), atol=1e-5)          # view 0 is the image as is
    message = random_messages(1, DEFAULT_BITS)[0]
    best = WatermarkDetector.best_agreement(views, message)
    per_view = torch.stack([WatermarkDetector.agreement(views[:, v], message) for v in range(views.shape[1])], 1)
    assert torch.allclose(best, per_view.max(1).values)
    # A plane wave magnified 1.25x (what a centre crop keeping 80% does once stretched back) is back at
    # its own frequency in the 0.8 view: its spectral peak returns to the original bin.
    u, v = pattern_frequencies(1, 128)[0]
    coords = torch.arange(256, dtype=torch.float32)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    magnified = 0.5 + 0.2 * torch.cos(2 * torch.pi * (u * xx + v * yy) / 128 / 1.25)
    restored = zoom_out(magnified.expand(1, 3, 256, 256), 0.8)[0, 0]
    spectrum = torch.fft.fft2(restored - restored.mean()).abs()
    peak = divmod(int(spectrum[:128].argmax()), 256)
    assert {peak, ((-peak[0]) % 256, (-peak[1]) % 256)} & {(2 * v % 256, 2 * u % 256)}
