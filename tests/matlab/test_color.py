"""rgb2gray and MATLAB's rounding."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from tests.base import BaseTester


class TestRgb2Gray(BaseTester):
    def test_primaries_give_matlabs_values(self):
        # MATLAB: rgb2gray(uint8(cat(3, 255, 0, 0))) is 76; green 150; blue 29; mid gray 128
        pixels = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]], dtype=torch.uint8)
        gray = matlab.rgb2gray(pixels.T.reshape(3, 1, 4))
        assert gray.dtype == torch.uint8 and gray.flatten().tolist() == [76, 150, 29, 128]

    def test_weights_are_the_inverse_ntsc_row_not_bt601(self):
        # 0.2989 R + 0.5870 G + 0.1140 B: (100, 101, 0) gives 89.17 (BT.601's 0.299/0.587/0.114: 89.19)
        image = torch.tensor([100.0, 101.0, 0.0], dtype=torch.float64).view(3, 1, 1)
        expected = torch.tensor([100 * 0.298936021293775 + 101 * 0.587043074451121], dtype=torch.float64)
        self.assert_close(matlab.rgb2gray(image).flatten(), expected, rtol=0, atol=1e-12)

    def test_uint16_is_weighted_in_float64_and_rounded_to_uint16(self):
        pixels = np.random.default_rng(0).integers(0, 65536, (3, 4, 5))
        gray = matlab.rgb2gray(torch.from_numpy(pixels).to(torch.uint16))
        weights = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
        expected = np.floor(np.tensordot(weights, pixels.astype(np.float64), axes=1) + 0.5)
        assert gray.dtype == torch.uint16 and np.array_equal(gray[0].int().numpy(), expected)

    def test_batched(self, device):
        images = torch.randint(0, 256, (2, 3, 5, 4), dtype=torch.uint8, device=device)
        assert matlab.rgb2gray(images).shape == (2, 1, 5, 4)

    def test_needs_three_channels(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\), got \(1, 4, 4\)"):
            matlab.rgb2gray(torch.zeros(1, 4, 4))


class TestRounding:
    def test_round_to_uint8_rounds_half_away_and_saturates(self):
        values = torch.tensor([-0.6, 0.49999, 0.5, 2.5, 254.5, 255.4, 1e9], dtype=torch.float64)
        assert matlab.round_to_uint8(values).tolist() == [0, 0, 1, 3, 255, 255, 255]

    def test_round_to_class_saturates_at_the_class_range(self):
        values = torch.tensor([-0.6, 0.5, 255.5, 65534.49, 65534.5, 1e9], dtype=torch.float64)
        assert matlab.round_to_class(values, torch.uint16).tolist() == [0, 1, 256, 65534, 65535, 65535]
        assert matlab.round_to_class(values, torch.uint8).tolist() == [0, 1, 255, 255, 255, 255]
        with pytest.raises(ValueError, match="uint8 or torch.uint16"):
            matlab.round_to_class(values, torch.int32)

    def test_class_conversions(self):
        sixteen = torch.tensor([0, 128, 129, 65535], dtype=torch.uint16)
        assert matlab.im2uint8(sixteen).tolist() == [0, 0, 1, 255]  # uint8(x / 257), half away from zero
        assert matlab.im2double(sixteen).tolist() == [0.0, 128 / 65535, 129 / 65535, 1.0]
        assert matlab.im2double(torch.tensor([51], dtype=torch.uint8)).tolist() == [0.2]
        assert [matlab.class_range(dtype) for dtype in (torch.uint8, torch.uint16, torch.float32)] == [255, 65535, 1]
        with pytest.raises(TypeError, match="uint8, uint16 or floating point"):
            matlab.im2double(torch.zeros(2, dtype=torch.int16))

    def test_im2uint8(self):
        assert matlab.im2uint8(torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 1.0], dtype=torch.float64)).tolist() == [
            0,
            1,
            2,
            255,
        ]
