"""derivative="release": the SIFT flow release's mexDenseSIFT (5-tap derivative), against its own
output on the reference pairs (tests/data/reference/release)."""

import numpy as np
import pytest
import torch

import siftflow_nn as sf
from siftflow_nn.descriptor.kernels import gradients
from tests.base import BaseTester
from tests.flow.test_schedules import RELEASE_CASES, _load


def _release_descriptor(image_u8: np.ndarray, dtype: torch.dtype, derivative: str = "release") -> np.ndarray:
    """mexDenseSIFT(im2double(image), 3, 1) as H x W x 128 uint8."""
    image = torch.from_numpy(image_u8).permute(2, 0, 1)[None].to(dtype) / 255
    descriptor = sf.sift_flow_descriptor(image, cell_size=3, derivative=derivative)
    return sf.to_uint8(sf.descriptor_to_hwc(descriptor))[0].numpy()


def _near_channel_ties(image_u8: np.ndarray, cell_size: int = 3) -> np.ndarray:
    """H x W bool: pixels whose descriptor support holds a pixel where the two strongest colour
    channels' gradient magnitudes are equal to 1e-9 but point differently. There the original
    keeps the first channel and any other float arithmetic may keep the other (see the reference
    README's channel ties): the descriptor around such a pixel is ill-defined."""
    image = torch.from_numpy(image_u8).permute(2, 0, 1)[None].double() / 255
    gx, gy = gradients(image, "release")
    magnitude = (gx * gx + gy * gy).sqrt()[0]
    if magnitude.shape[0] < 2:
        return np.zeros(image_u8.shape[:2], bool)
    top = magnitude.topk(2, dim=0)
    first, second = top.indices[0:1], top.indices[1:2]
    directions_differ = ((gx[0].gather(0, first) - gx[0].gather(0, second)).abs()
                         + (gy[0].gather(0, first) - gy[0].gather(0, second)).abs())[0] > 1e-12  # fmt: skip
    tied = ((top.values[0] - top.values[1]) <= 1e-9 * top.values[0]) & directions_differ & (top.values[0] > 0)
    reach = 2 * cell_size + 1  # the 4 x 4 cells at offsets -1..2 cell sizes, and the cell filter
    grown = torch.nn.functional.max_pool2d(tied[None, None].float(), 2 * reach + 1, 1, reach)[0, 0]
    return grown.numpy() > 0


class TestReleaseDerivative(BaseTester):
    @pytest.mark.parametrize("key", ["1", "2"])
    @pytest.mark.parametrize("name", RELEASE_CASES)
    def test_float64_equals_the_release_but_for_rounding(self, name, key):
        case = _load(name)
        ours = _release_descriptor(case[f"im{key}"], torch.float64)
        untied = ~_near_channel_ties(case[f"im{key}"])
        assert untied.mean() > 0.6  # most of the image is checked
        difference = np.abs(ours.astype(int) - case[f"sift{key}"].astype(int))[untied]
        assert difference.max() <= 1
        assert (difference == 0).mean() >= 0.99999

    def test_float32_on_a_gray_image(self):
        """One channel: no channel ties, float32 is as good but for its rounding."""
        case = _load("translate_m6_5_camera_112x112")
        difference = np.abs(_release_descriptor(case["im1"], torch.float32).astype(int) - case["sift1"].astype(int))
        assert difference.max() <= 1 and (difference == 0).mean() >= 0.9999

    def test_the_sobel_descriptor_is_a_different_one(self):
        """What the option is for: Sobel entries agree with the release on only a third of them."""
        case = _load("translate_m6_5_camera_112x112")
        sobel = _release_descriptor(case["im1"], torch.float64, derivative="sobel")
        assert (sobel == case["sift1"]).mean() < 0.5

    def test_module_and_options(self):
        module = sf.SIFTFlowDescriptor(cell_size=3, derivative="release")
        assert "derivative='release'" in repr(module) or "release" in repr(module)
        image = torch.rand(1, 1, 20, 24, dtype=torch.float64)
        self.assert_close(module(image), sf.sift_flow_descriptor(image, 3, derivative="release"), exact=True)
        with pytest.raises(ValueError, match="derivative"):
            sf.SIFTFlowDescriptor(derivative="scharr")
