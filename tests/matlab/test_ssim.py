"""ssim against its definition: the 11 x 11 Gaussian window (sigma 1.5), K = (0.01, 0.03), L."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from tests.base import BaseTester
from tests.matlab.test_filters import filter_2d, fspecial_gaussian


def ssim_by_hand(x: np.ndarray, y: np.ndarray, L: float) -> float:
    window = fspecial_gaussian(11, 1.5)
    mu_x, mu_y = filter_2d(x, window), filter_2d(y, window)
    sigma_xx = filter_2d(x * x, window) - mu_x**2
    sigma_yy = filter_2d(y * y, window) - mu_y**2
    sigma_xy = filter_2d(x * y, window) - mu_x * mu_y
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_xx + sigma_yy + c2))
    return float(ssim_map.mean())


class TestSsim(BaseTester):
    def test_uint8_matches_the_definition_with_L_255(self):
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (14, 12)).astype(np.uint8)
        y = np.clip(x.astype(int) + rng.integers(-40, 40, x.shape), 0, 255).astype(np.uint8)
        actual = matlab.ssim(torch.from_numpy(x), torch.from_numpy(y))
        assert abs(float(actual) - ssim_by_hand(x.astype(float), y.astype(float), 255.0)) < 1e-12

    def test_uint16_matches_the_definition_with_L_65535(self):
        rng = np.random.default_rng(1)
        x = rng.integers(0, 65536, (14, 12))
        y = np.clip(x + rng.integers(-9000, 9000, x.shape), 0, 65535)
        actual = matlab.ssim(torch.from_numpy(x).to(torch.uint16), torch.from_numpy(y).to(torch.uint16))
        assert abs(float(actual) - ssim_by_hand(x.astype(float), y.astype(float), 65535.0)) < 1e-12
        # the same page at 8 bits differs: its values are rounded to 1/255, not to 1/65535
        x8, y8 = (torch.from_numpy(np.floor(v / 257 + 0.5)).to(torch.uint8) for v in (x, y))
        assert abs(float(actual) - float(matlab.ssim(x8, y8))) > 1e-6

    def test_float_uses_L_1_by_default(self):
        x, y = torch.rand(2, 12, 12, dtype=torch.float64)
        expected = ssim_by_hand(x.numpy(), y.numpy(), 1.0)
        assert abs(float(matlab.ssim(x, y)) - expected) < 1e-12
        assert abs(float(matlab.ssim(x * 255, y * 255, data_range=255)) - expected) < 1e-12

    def test_batched_one_value_per_image(self, device):
        x = torch.randint(0, 256, (3, 1, 16, 16), dtype=torch.uint8, device=device)
        values = matlab.ssim(x, x.flip(-1))
        assert values.shape == (3, 1)
        assert float(matlab.ssim(x[1:2], x[1:2]).squeeze()) == 1.0
        assert abs(float(values[2, 0]) - float(matlab.ssim(x[2, 0], x[2, 0].flip(-1)))) < 1e-12

    def test_mismatched_inputs(self):
        with pytest.raises(ValueError, match="one shape and dtype"):
            matlab.ssim(torch.zeros(8, 8), torch.zeros(8, 9))
        with pytest.raises(ValueError, match="one shape and dtype"):
            matlab.ssim(torch.zeros(8, 8), torch.zeros(8, 8, dtype=torch.uint8))
        with pytest.raises(TypeError, match="uint8, uint16 or floating point"):
            matlab.ssim(torch.zeros(8, 8, dtype=torch.int32), torch.zeros(8, 8, dtype=torch.int32))

    @pytest.mark.parametrize(
        "data_range, error", [(0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                              (float("nan"), ValueError), (True, TypeError), ("255", TypeError)]
    )  # fmt: skip
    def test_bad_data_ranges(self, data_range, error):
        with pytest.raises(error, match="data_range must be a positive finite number"):
            matlab.ssim(torch.zeros(8, 8), torch.zeros(8, 8), data_range=data_range)

    def test_numpy_and_0d_tensor_data_ranges(self):
        x, y = torch.rand(2, 12, 12, dtype=torch.float64) * 255
        expected = matlab.ssim(x, y, data_range=255)
        for data_range in (np.float32(255), np.int64(255), torch.tensor(255.0)):
            assert float(matlab.ssim(x, y, data_range=data_range)) == float(expected)
