"""fspecial + imfilter and impyramid against their definitions, evaluated directly in 2-D."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from tests.base import BaseTester


def clamp(index: int, length: int) -> int:
    return min(max(index, 0), length - 1)  # 'replicate' borders


def filter_2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with a 2-D kernel, replicated borders, one output sample at a time."""
    radius = kernel.shape[0] // 2
    height, width = image.shape
    out = np.zeros((height, width))
    for y in range(height):
        for x in range(width):
            out[y, x] = sum(
                kernel[i, j] * image[clamp(y + i - radius, height), clamp(x + j - radius, width)]
                for i in range(kernel.shape[0])
                for j in range(kernel.shape[1])
            )
    return out


def fspecial_gaussian(size: int, sigma: float) -> np.ndarray:
    """fspecial('gaussian', size, sigma): exp(-(x^2 + y^2) / (2 sigma^2)), normalised in 2-D."""
    steps = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(steps[:, None] ** 2 + steps[None, :] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


class TestGaussianFilter(BaseTester):
    @pytest.mark.parametrize("size, sigma", [(7, 1.0), (5, 0.67), (11, 1.5), (3, 2.0)])
    def test_matches_the_2d_definition(self, size, sigma):
        image = np.random.default_rng(size).random((9, 13)) * 255
        actual = matlab.gaussian_filter(torch.from_numpy(image), size, sigma)
        self.assert_close(
            actual, torch.from_numpy(filter_2d(image, fspecial_gaussian(size, sigma))), rtol=0, atol=1e-10
        )

    def test_uint8_is_rounded_back_to_uint8(self):
        image = np.random.default_rng(3).integers(0, 256, (10, 8)).astype(np.uint8)
        actual = matlab.gaussian_filter(torch.from_numpy(image)[None, None], 7, 1.0)[0, 0]
        expected = np.floor(filter_2d(image.astype(np.float64), fspecial_gaussian(7, 1.0)) + 0.5)
        assert actual.dtype == torch.uint8 and np.array_equal(actual.numpy(), expected)

    def test_uint16_is_rounded_back_to_uint16(self):
        image = np.random.default_rng(4).integers(0, 65536, (10, 8))
        actual = matlab.gaussian_filter(torch.from_numpy(image).to(torch.uint16), 7, 1.0)
        expected = np.clip(np.floor(filter_2d(image.astype(np.float64), fspecial_gaussian(7, 1.0)) + 0.5), 0, 65535)
        assert actual.dtype == torch.uint16 and np.array_equal(actual.int().numpy(), expected)

    def test_numpy_and_0d_tensor_arguments(self):
        image = torch.rand(1, 9, 9, dtype=torch.float64)
        expected = matlab.gaussian_filter(image, 5, 0.75)
        for size, sigma in ((np.int64(5), np.float32(0.75)), (torch.tensor(5), torch.tensor(0.75)), (5, 3 / 4)):
            assert torch.equal(matlab.gaussian_filter(image, size, sigma), expected), (size, sigma)

    def test_taps_are_the_separable_factor_of_fspecial(self):
        taps = matlab.gaussian_taps(7, 1.0)
        np.testing.assert_allclose(np.outer(taps, taps), fspecial_gaussian(7, 1.0), rtol=0, atol=1e-15)

    @pytest.mark.parametrize(
        "size, sigma, error, message",
        [
            (4, 1.0, ValueError, "size must be a positive odd int, got 4"),
            (0, 1.0, ValueError, "size must be a positive odd int, got 0"),
            (5.0, 1.0, TypeError, "size must be a positive odd int, got float"),
            (True, 1.0, TypeError, "size must be a positive odd int, got bool"),
            (5, 0.0, ValueError, "sigma must be a positive finite number, got 0.0"),
            (5, float("inf"), ValueError, "sigma must be a positive finite number, got inf"),
            (5, float("nan"), ValueError, "sigma must be a positive finite number, got nan"),
            (5, True, TypeError, "sigma must be a positive finite number, got bool"),
        ],
    )  # fmt: skip
    def test_bad_arguments(self, size, sigma, error, message):
        with pytest.raises(error, match=message):
            matlab.gaussian_filter(torch.zeros(5, 5), size, sigma)


class TestImpyramidReduce(BaseTester):
    KERNEL = np.array([1, 4, 6, 4, 1]) / 16  # [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2], a = 0.375

    def reduce(self, image: np.ndarray, round_each_pass: bool) -> np.ndarray:
        """Down the columns, keep every other row; along the rows, keep every other column."""
        height, width = image.shape
        columns = np.array(
            [[sum(self.KERNEL[i] * image[clamp(y + i - 2, height), x] for i in range(5)) for x in range(width)]
             for y in range(0, height, 2)]
        )  # fmt: skip
        if round_each_pass:
            columns = np.floor(columns + 0.5)
        rows = np.array(
            [[sum(self.KERNEL[j] * columns[y, clamp(x + j - 2, width)] for j in range(5)) for x in range(0, width, 2)]
             for y in range(columns.shape[0])]
        )  # fmt: skip
        return np.floor(rows + 0.5) if round_each_pass else rows

    @pytest.mark.parametrize("shape", [(8, 8), (9, 7), (5, 12), (2, 3)])
    def test_float_matches_the_definition(self, shape):
        image = np.random.default_rng(0).random(shape)
        actual = matlab.impyramid_reduce(torch.from_numpy(image))
        assert actual.shape == ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
        self.assert_close(actual, torch.from_numpy(self.reduce(image, False)), rtol=0, atol=1e-12)

    def test_uint8_rounds_after_each_pass(self):
        image = np.random.default_rng(5).integers(0, 256, (11, 10)).astype(np.uint8)
        actual = matlab.impyramid_reduce(torch.from_numpy(image)[None])[0]
        assert actual.dtype == torch.uint8
        assert np.array_equal(actual.numpy(), self.reduce(image.astype(np.float64), True))

    def test_uint16_rounds_to_uint16_after_each_pass(self):
        image = np.random.default_rng(6).integers(0, 65536, (11, 10))
        actual = matlab.impyramid_reduce(torch.from_numpy(image).to(torch.uint16))
        assert actual.dtype == torch.uint16
        assert np.array_equal(actual.int().numpy(), self.reduce(image.astype(np.float64), True))

    def test_batched_and_on_the_device(self, device):
        images = torch.randint(0, 256, (3, 2, 9, 9), dtype=torch.uint8, device=device)
        out = matlab.impyramid_reduce(images)
        assert out.shape == (3, 2, 5, 5) and out.device.type == device.type
        assert torch.equal(out[2, 1], matlab.impyramid_reduce(images[2, 1]))
