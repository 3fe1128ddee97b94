"""The scan's fast spectrum helpers give the numbers of the torch operations they stand in for."""

import math

import pytest
import torch
import torch.nn.functional as F

from gwm_desktop.core.spectrum import (
    ZoomedBins,
    band_spectrum,
    box_mean,
    rotate_about_centre,
    whiten,
    zoom_out,
)


def test_box_mean_is_the_stride_one_average_pool():
    x = torch.rand(3, 1, 40, 33, dtype=torch.float64)
    assert torch.allclose(box_mean(x, 7), F.avg_pool2d(x, 7, stride=1))
    assert box_mean(x, 1).equal(x)


def test_whiten_subtracts_each_bins_neighbourhood_mean():
    band = torch.randn(2, 1, 22, 22, dtype=torch.complex128)
    region = torch.log(band.real**2 + band.imag**2 + 1e-8)
    assert torch.allclose(whiten(band, 16), region[..., 3:-3, 3:-3] - F.avg_pool2d(region, 7, stride=1))


@pytest.mark.parametrize("size,zoom", [(256, 0.8), (128, 0.45), (128, 0.97), (61, 0.5)])
def test_zoom_out_is_the_antialiased_shrink_centred_on_the_mean(size, zoom):
    x = torch.rand(2, 3, size, size, dtype=torch.float64)
    small, offset = round(size * zoom), (size - round(size * zoom)) // 2
    expected = x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
    expected[..., offset:offset + small, offset:offset + small] = F.interpolate(
        x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
    out = zoom_out(x, zoom)
    assert out.dtype == x.dtype and torch.allclose(out, expected, atol=1e-6)
    assert zoom_out(x, 1.0) is x


@pytest.mark.parametrize("cols", [[1, 17, 20, 21, 30], list(range(14, 27))])
def test_zoomed_bins_are_the_band_of_the_zoomed_view_at_those_bins(cols):
    """The phase search's shortcut: the same band values as zooming out, then ``band_spectrum`` (any
    columns, and columns -M .. M, whose negative half it takes from the positive one's products)."""
    size, half = 64, 20
    rows, cols = torch.tensor([0, 3, 19, 20, 39]), torch.tensor(cols)
    zooms = (0.45, 0.61, 0.8, 0.99, 1.0)
    bins = ZoomedBins(size, half, zooms, rows, cols)
    x = torch.rand(3, 1, size, size)
    x[1] += torch.linspace(0, 2, size)          # a gradient: the mean surround and its removal matter
    which = torch.tensor([[0, 4, 2], [1, 3, 4], [2, 2, 0]])
    got = bins(x, which)
    for b in range(3):
        for k in range(3):
            expected = band_spectrum(zoom_out(x[b:b + 1], zooms[int(which[b, k])]), half)[0, 0][rows][:, cols]
            assert torch.allclose(got[b, k], expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    shared = bins(x, which[0])                 # the same zooms for every image
    assert torch.allclose(shared[0], got[0], rtol=1e-5, atol=1e-5 * float(got[0].abs().max()))
    assert torch.allclose(shared[2], bins(x[2:], which[:1])[0], rtol=1e-5, atol=1e-5 * float(got[0].abs().max()))


def test_batched_rotation_matches_affine_grid_and_leaves_unturned_images_alone():
    """``rotate_about_centre`` builds ``F.affine_grid``'s grid without its matrix product: the same
    sampling, to float rounding; images turned by less than 0.001 degrees come back bit for bit."""
    x = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    degrees = torch.tensor([2.5, 0.0, -4.0, 0.0004])
    turned = rotate_about_centre(x, degrees)
    for image, angle, result in zip(x, degrees.tolist(), turned, strict=True):
        if abs(angle) < 1e-3:
            assert torch.equal(result, image)
            continue
        turn = math.radians(angle)
        theta = torch.tensor([[[math.cos(turn), -math.sin(turn), 0.0], [math.sin(turn), math.cos(turn), 0.0]]])
        grid = F.affine_grid(theta, [1, 1, 64, 64], align_corners=False)
        mean = image.mean()
        reference = F.grid_sample(image[None] - mean, grid, mode="bilinear", align_corners=False)[0] + mean
        assert torch.allclose(result, reference, atol=1e-5)
    assert torch.allclose(rotate_about_centre(x, 2.5)[0], turned[0], atol=0)
