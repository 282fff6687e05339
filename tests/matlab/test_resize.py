"""imresize against its documented definition, evaluated by hand (plain Python) on small arrays."""

import math

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from tests.base import BaseTester


def cubic(x: float) -> float:
    """Keys' cubic convolution kernel with a = -0.5 (imresize's 'bicubic')."""
    x = abs(x)
    if x <= 1:
        return 1.5 * x**3 - 2.5 * x**2 + 1
    if x <= 2:
        return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
    return 0.0


def mirror(index: int, length: int) -> int:
    """MATLAB's symmetric border: ... 1 0 | 0 1 2 ... n-1 | n-1 n-2 ... (0-based)."""
    index = index % (2 * length)
    return index if index < length else 2 * length - 1 - index


def resize_1d(values: list[float], out_length: int, scale: float) -> list[float]:
    """One axis of imresize: output sample i (1-based) sits at u = i / s + (1 - 1 / s) / 2; shrinking
    widens the kernel to h(x) = s * cubic(s * x); the weights are normalised to sum 1."""
    n = len(values)
    kernel_scale = min(scale, 1.0)
    out = []
    for i in range(1, out_length + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        taps = [(k, kernel_scale * cubic(kernel_scale * (u - k))) for k in range(-3 * n - 10, 3 * n + 10)]
        total = sum(weight for _, weight in taps)
        out.append(sum(weight * values[mirror(k - 1, n)] for k, weight in taps if weight) / total)
    return out


def resize_2d(
    image: np.ndarray, rows: int, cols: int, round_each_pass: bool, scale: float | None = None, top: int = 255
) -> np.ndarray:
    """Both axes, the one with the smaller scale first (rows on ties), optional rounding to the
    integer class ``0 .. top``. With ``scale`` (imresize's scale argument) both axes use it; else
    each ``out / in``."""
    scales = (scale, scale) if scale else (rows / image.shape[0], cols / image.shape[1])
    out = image.astype(np.float64)
    for axis in sorted(range(2), key=lambda a: scales[a]):
        size = (rows, cols)[axis]
        out = np.apply_along_axis(lambda line, n=size, s=scales[axis]: resize_1d(list(line), n, s), axis, out)
        if round_each_pass:
            out = np.clip(np.floor(out + 0.5), 0, top)
    return out


class TestImresize(BaseTester):
    @pytest.mark.parametrize("out_size", [(4, 3), (13, 17), (8, 3), (20, 5)])
    def test_float_matches_the_definition(self, out_size):
        image = np.random.default_rng(0).random((8, 6))
        expected = resize_2d(image, *out_size, round_each_pass=False)
        actual = matlab.imresize(torch.from_numpy(image), out_size=out_size)
        self.assert_close(actual, torch.from_numpy(expected), rtol=0, atol=1e-12)

    def test_scale_gives_ceil_of_the_scaled_size(self):
        image = torch.rand(2, 1, 7, 9, dtype=torch.float64)
        out = matlab.imresize(image, 0.5)
        assert out.shape == (2, 1, 4, 5)
        expected = resize_2d(image[1, 0].numpy(), 4, 5, round_each_pass=False, scale=0.5)
        self.assert_close(out[1, 0], torch.from_numpy(expected), rtol=0, atol=1e-12)

    def test_uint8_rounds_after_each_pass(self):
        image = np.random.default_rng(1).integers(0, 256, (9, 11)).astype(np.uint8)
        actual = matlab.imresize(torch.from_numpy(image), out_size=(5, 4))
        assert actual.dtype == torch.uint8
        assert np.array_equal(actual.numpy(), resize_2d(image, 5, 4, round_each_pass=True))
        # ... which is not rounding once at the end: the test tells the two apart
        once = np.clip(np.floor(resize_2d(image, 5, 4, round_each_pass=False) + 0.5), 0, 255)
        assert not np.array_equal(actual.numpy(), once)

    def test_uint16_rounds_to_uint16_after_each_pass(self):
        # MATLAB's imresize keeps a uint16 image's class: rounded to 0..65535 after each pass
        image = np.random.default_rng(2).integers(0, 65536, (9, 11))
        actual = matlab.imresize(torch.from_numpy(image).to(torch.uint16), out_size=(5, 14))
        assert actual.dtype == torch.uint16
        expected = resize_2d(image, 5, 14, round_each_pass=True, top=65535)
        assert np.array_equal(actual.int().numpy(), expected)
        # ... which is not the 8-bit page's rounding scaled by 257
        as_8_bit = matlab.imresize(torch.from_numpy(image // 257).to(torch.uint8), out_size=(5, 14))
        assert not np.array_equal(actual.int().numpy(), as_8_bit.int().numpy() * 257)

    def test_numpy_and_0d_tensor_numbers_are_numbers(self):
        image = torch.rand(1, 1, 9, 7, dtype=torch.float64)
        expected = matlab.imresize(image, 0.5)
        for scale in (np.float32(0.5), np.float64(0.5), torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64)):
            assert torch.equal(matlab.imresize(image, scale), expected), scale
        by_size = matlab.imresize(image, out_size=(4, 3))
        for size in ((np.int64(4), np.int32(3)), np.array([4, 3]), torch.tensor([4, 3]), torch.Size([4, 3])):
            assert torch.equal(matlab.imresize(image, out_size=size), by_size), size

    def test_antialiasing_widens_the_kernel_when_shrinking(self):
        indices, weights = matlab.resize_weights(40, 10, 0.25)
        assert indices.shape[1] == math.ceil(4 / 0.25) + 2
        self.assert_close(torch.from_numpy(weights.sum(1)), torch.ones(10, dtype=torch.float64))
        # a line of constant 1s stays 1; a checkerboard's highest frequency is filtered away
        stripes = torch.tensor([0.0, 1.0] * 20, dtype=torch.float64).expand(4, 40)
        assert matlab.imresize(stripes, out_size=(4, 10))[:, 2:-2].sub(0.5).abs().max() < 0.05

    def test_constant_images_stay_constant(self, device):
        image = torch.full((1, 3, 10, 7), 200, dtype=torch.uint8, device=device)
        out = matlab.imresize(image, 1.7)
        assert out.shape == (1, 3, 17, 12) and bool((out == 200).all()) and out.device.type == device.type

    @pytest.mark.parametrize(
        "arguments, error, message",
        [
            (dict(scale=0.5, out_size=(2, 2)), ValueError, "one of scale and out_size"),
            (dict(), ValueError, "one of scale and out_size"),
            (dict(scale=-1.0), ValueError, "scale must be a positive finite number"),
            (dict(scale=float("nan")), ValueError, "scale must be a positive finite number"),
            (dict(scale=float("inf")), ValueError, "scale must be a positive finite number"),
            (dict(scale=True), TypeError, "scale must be a positive finite number, got bool"),
            (dict(scale="0.5"), TypeError, "scale must be a positive finite number, got str"),
            (dict(scale=torch.tensor([0.5])), TypeError, "scale must be a positive finite number, got Tensor"),
            (dict(out_size=(0, 3)), ValueError, r"out_size\[0\] must be a positive int, got 0"),
            (dict(out_size=(2.5, 3)), TypeError, r"out_size\[0\] must be a positive int, got float"),
            (dict(out_size=(2, True)), TypeError, r"out_size\[1\] must be a positive int, got bool"),
            (dict(out_size=(2, 3, 4)), ValueError, "out_size must be two positive ints"),
            (dict(out_size=5), ValueError, "out_size must be two positive ints"),
        ],
    )  # fmt: skip
    def test_bad_arguments(self, arguments, error, message):
        with pytest.raises(error, match=message):
            matlab.imresize(torch.zeros(4, 4), **arguments)

    def test_bad_images(self):
        with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
            matlab.imresize(torch.zeros(0, 4), 0.5)
        with pytest.raises(TypeError, match="uint8, uint16 or floating point"):
            matlab.imresize(torch.zeros(4, 4, dtype=torch.int32), 0.5)
