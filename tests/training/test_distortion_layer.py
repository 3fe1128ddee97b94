"""Phase 1's distortion layer: the opt-in training transforms and the differentiable latent round trip."""

import random

import torch

from gwm_desktop.core.taef2 import load_latent_autoencoder
from training.distortion_layer import TRAINING_TRANSFORM_NAMES, DistortionLayer, training_transform


def test_each_training_transform_keeps_the_working_size_and_changes_the_frame():
    x = torch.rand(3, 64, 64)
    rng = random.Random(0)
    for name in TRAINING_TRANSFORM_NAMES:
        y = training_transform(x, name, rng)
        assert y.shape == x.shape
        assert not torch.allclose(y, x), name
    assert torch.equal(training_transform(x, "flip", rng), x.flip(-1))


def test_layer_draws_training_transforms_only_when_asked():
    assert not set(TRAINING_TRANSFORM_NAMES) & set(DistortionLayer().names)
    assert set(TRAINING_TRANSFORM_NAMES) <= set(DistortionLayer(training_transforms=True).names)


def test_latent_round_trip_passes_gradients_to_the_watermark():
    layer = DistortionLayer(seed=0, p_identity=0.0, autoencoder=load_latent_autoencoder(), p_latent=1.0)
    w = torch.zeros(2, 3, 32, 32, requires_grad=True)
    out = layer((torch.rand(2, 3, 32, 32) * 0.8 + 0.1) + w)
    out.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
