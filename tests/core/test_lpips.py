import json

import pytest
from PIL import Image

from gwm_desktop.core.lpips_metric import cached_lpips, lpips_distance, pil_to_lpips_tensor, resize_for_lpips
from tests.conftest import SHARED_DATA


def test_genuine_alexnet_reproduces_reference_values():
    folder = SHARED_DATA / "lpips_reference"
    if not folder.is_dir():
        pytest.skip("../shared/data/lpips_reference is absent")
    expected = json.loads((folder / "expected.json").read_text())["alex"]
    model = cached_lpips("cpu")
    ref = pil_to_lpips_tensor(Image.open(folder / "ex_ref.png"))
    for name in ("ex_p0", "ex_p1"):
        value = float(model(ref, pil_to_lpips_tensor(Image.open(folder / f"{name}.png"))))
        assert value == pytest.approx(expected[f"ex_ref-{name}"], abs=expected["tolerance"])


def test_spec_measure_resizes_shorter_side_to_256_and_is_zero_for_identical_images():
    image = Image.new("RGB", (900, 600), (120, 80, 40))
    assert resize_for_lpips(image).size == (384, 256)
    assert lpips_distance(image, image.copy()) == pytest.approx(0.0, abs=1e-6)
