"""Phase 1's distortion layer: the opt-in training transforms and the differentiable latent round trip."""

import random

import torch

from gwm_desktop.core.taef2 import load_latent_autoencoder
from training.distortion_layer import (
    ISOTROPIC_TRANSFORM_NAMES,
    TRAINING_TRANSFORM_NAMES,
    DistortionLayer,
    training_transform,
)


def test_each_training_transform_keeps_the_working_size_and_changes_the_frame():
    x = torch.rand(3, 64, 64)
    rng = random.Random(0)
    for name in TRAINING_TRANSFORM_NAMES:
        y = training_transform(x, name, rng)
        assert y.shape == x.shape
        assert not torch.allclose(y, x), name
    assert torch.equal(training_transform(x, "flip", rng), x.flip(-1))


def test_isotropic_transforms_are_what_an_isotropic_scanner_sees():
    """A square crop only moves the watermark, and a random crop comes back zoomed out by about its own
    magnification (the registered view): the picture shrinks onto a flat surround of its mean."""
    x = torch.rand(3, 64, 64)
    rng = random.Random(1)
    for name in ISOTROPIC_TRANSFORM_NAMES:
        assert training_transform(x, name, rng).shape == x.shape, name
    moved = training_transform(x, "shift", rng)
    assert torch.allclose(torch.sort(moved.flatten()).values, torch.sort(x.flatten()).values)  # same pixels
    registered = training_transform(x, "registered_crop", rng)
    border = registered[:, 0, :]
    assert torch.allclose(border, border[:, :1].expand_as(border))   # the flat surround of zoom_out
    layer = DistortionLayer(training_transforms=True, isotropic=True)
    assert set(ISOTROPIC_TRANSFORM_NAMES) <= set(layer.names) and "bucket_crop" not in layer.names


def test_layer_draws_training_transforms_only_when_asked():
    assert not set(TRAINING_TRANSFORM_NAMES) & set(DistortionLayer().names)
    assert set(TRAINING_TRANSFORM_NAMES) <= set(DistortionLayer(training_transforms=True).names)


def test_latent_round_trip_passes_gradients_to_the_watermark():
    layer = DistortionLayer(seed=0, p_identity=0.0, autoencoder=load_latent_autoencoder(), p_latent=1.0)
    w = torch.zeros(2, 3, 32, 32, requires_grad=True)
    out = layer((torch.rand(2, 3, 32, 32) * 0.8 + 0.1) + w)
    out.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
