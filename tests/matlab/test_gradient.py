"""imgradient against its definition: imfilter with -fspecial('sobel') and its transpose
('replicate'), hypot, single for integer images; evaluated in 2-D one sample at a time."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from tests.base import BaseTester
from tests.matlab.test_filters import filter_2d

# MATLAB's imgradientxy: h = -fspecial('sobel'); Gx = imfilter(I, h'), Gy = imfilter(I, h)
SOBEL_Y = -np.array([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
SOBEL_X = SOBEL_Y.T


def imgradient_by_hand(image: np.ndarray) -> np.ndarray:
    return np.hypot(filter_2d(image, SOBEL_X), filter_2d(image, SOBEL_Y))


class TestImgradient(BaseTester):
    @pytest.mark.parametrize("dtype, top", [(torch.uint8, 255), (torch.uint16, 65535)])
    def test_integer_images_give_the_correctly_rounded_single_magnitude(self, dtype, top):
        image = np.random.default_rng(top).integers(0, top + 1, (9, 12))
        actual = matlab.imgradient(torch.from_numpy(image).to(dtype))
        assert actual.dtype == torch.float32
        # the responses are exact integers, their hypot in float64 rounded once to single
        expected = imgradient_by_hand(image.astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(actual.numpy(), expected)

    def test_float_images_keep_their_dtype(self):
        image = np.random.default_rng(1).random((7, 10))
        actual = matlab.imgradient(torch.from_numpy(image))
        assert actual.dtype == torch.float64
        self.assert_close(actual, torch.from_numpy(imgradient_by_hand(image)), rtol=0, atol=1e-12)

    def test_borders_are_replicated(self):
        # a ramp along x: 8 per unit slope inside; at a replicated border the difference spans 1 step, not 2
        ramp = torch.arange(5, dtype=torch.uint8).expand(4, 5)
        assert matlab.imgradient(ramp)[2].tolist() == [4.0, 8.0, 8.0, 8.0, 4.0]

    def test_batched_and_on_the_device(self, device):
        images = torch.randint(0, 256, (2, 3, 8, 9), dtype=torch.uint8, device=device)
        out = matlab.imgradient(images)
        assert out.shape == images.shape and out.device.type == device.type
        assert torch.equal(out[1, 2], matlab.imgradient(images[1, 2]))

    def test_one_pixel_has_no_gradient(self):
        assert matlab.imgradient(torch.full((1, 1), 9, dtype=torch.uint8)).tolist() == [[0.0]]

    def test_bad_images(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
            matlab.imgradient(torch.zeros(4, 0))
        with pytest.raises(TypeError, match="uint8, uint16 or floating point"):
            matlab.imgradient(torch.zeros(4, 4, dtype=torch.int64))
