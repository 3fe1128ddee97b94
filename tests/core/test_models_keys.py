import torch

from gwm_desktop.core.keys import message_from_key, new_key, random_messages
from gwm_desktop.core.models import WatermarkDetector, WatermarkGenerator, whitened_spectrum


def test_message_is_deterministic_balanced_and_key_specific():
    key = new_key()
    m = message_from_key(key, 48)
    assert torch.equal(m, message_from_key(key, 48))
    assert int((m > 0).sum()) == 24
    assert not torch.equal(m, message_from_key(new_key(), 48))
    batch = random_messages(5, 48)
    assert batch.shape == (5, 48) and torch.all((batch > 0).sum(1) == 24)


def test_generator_and_detector_shapes():
    g, d = WatermarkGenerator(), WatermarkDetector()
    x = torch.rand(2, 3, 256, 256)
    w = g(x, random_messages(2, 48))
    assert w.shape == x.shape
    assert abs(float(w.detach().mean())) < 1e-3
    assert d(x).shape == (2, 48)
    assert d(torch.rand(1, 3, 300, 200)).shape == (1, 48)  # other sizes are resized


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
