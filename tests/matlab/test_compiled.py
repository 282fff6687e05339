"""The compiled CPU path of the MATLAB functions gives the torch path's bytes (its values, for ssim)."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from siftflow_nn.matlab import _cpu
from tests.base import BaseTester

pytest.importorskip(
    "siftflow_nn._kernels"
)  # a source install without a C++ compiler has none (test_native.py fails then)

SHAPES = [(2, 1, 37, 23), (1, 3, 16, 41), (8, 5)]


def _both(function, *tensors, monkeypatch):
    """``function`` on the compiled path, then with the kernels taken away (the torch path)."""
    assert _cpu.compiled(*tensors)
    compiled = function(*tensors)
    with monkeypatch.context() as patch:
        patch.setattr(_cpu, "kernels", None)
        assert not _cpu.compiled(*tensors)
        reference = function(*tensors)
    return compiled, reference


def _image(shape, dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        image = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        image[..., :4, :4] = 128  # flat: sums land on exact halves, where rounding tells
        return image
    return torch.rand(shape, generator=generator, dtype=torch.float64)


class TestCompiledPath(BaseTester):
    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float64], ids=["uint8", "fp64"])
    @pytest.mark.parametrize("size", [{"scale": 0.5}, {"scale": 0.37}, {"out_size": (19, 30)}, {"scale": 2.0}])
    def test_imresize(self, shape, dtype, size, monkeypatch):
        compiled, reference = _both(
            lambda image: matlab.imresize(image, **size), _image(shape, dtype), monkeypatch=monkeypatch
        )
        assert compiled.dtype == reference.dtype and compiled.shape == reference.shape
        assert torch.equal(compiled, reference)

    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("size, sigma", [(7, 1.0), (5, 0.67), (11, 1.5)])
    def test_gaussian_filter_uint8(self, shape, size, sigma, monkeypatch):
        image = _image(shape, torch.uint8, seed=size)
        compiled, reference = _both(lambda x: matlab.gaussian_filter(x, size, sigma), image, monkeypatch=monkeypatch)
        assert torch.equal(compiled, reference)

    @pytest.mark.parametrize("shape", SHAPES + [(1, 1)])
    def test_impyramid_reduce_uint8(self, shape, monkeypatch):
        compiled, reference = _both(matlab.impyramid_reduce, _image(shape, torch.uint8), monkeypatch=monkeypatch)
        assert torch.equal(compiled, reference)

    @pytest.mark.parametrize("shape", SHAPES)
    @pytest.mark.parametrize("dtype", [torch.uint8, torch.float64], ids=["uint8", "fp64"])
    def test_ssim(self, shape, dtype, monkeypatch):
        image1 = _image(shape, dtype, seed=1)
        image2 = image1 // 2 + 40 if dtype == torch.uint8 else (image1 * 0.7 + 0.1 * _image(shape, dtype, seed=2))
        compiled, reference = _both(matlab.ssim, image1, image2, monkeypatch=monkeypatch)
        assert compiled.shape == reference.shape and compiled.dtype == torch.float64
        # the same map, averaged in another order
        self.assert_close(compiled, reference, rtol=1e-13, atol=1e-15)

    def test_float32_and_gradients_stay_on_the_torch_path(self):
        assert not _cpu.compiled(torch.rand(4, 4))
        assert not _cpu.compiled(torch.rand(4, 4, dtype=torch.float64, requires_grad=True))

    @pytest.mark.parametrize("length", [2, 7, 8, 447, 894])
    def test_the_scale_half_has_dyadic_taps(self, length):
        """What the 2010 pyramid and evalUnwarp's halving rely on: exact integers at the scale 0.5."""
        _, weights = matlab.resize_weights(length, (length + 1) // 2, 0.5)
        taps = matlab.dyadic_taps(weights)
        assert taps is not None and np.array_equal(taps / 256, weights)

    @pytest.mark.parametrize(
        ("weights", "bits", "message"),
        [
            ([[0.5, 0.5]], 8, r"weights must be an \(out_length, taps\) float array, got list"),
            (np.ones(3), 8, r"weights must be .* got a float64 array of shape \(3,\)"),
            (np.ones((2, 2), np.int64), 8, r"weights must be .* got a int64 array"),
            (np.ones((2, 2)), 0, "bits must be an int from 1 to 23, got 0"),
            (np.ones((2, 2)), 8.0, "bits must be an int from 1 to 23, got 8.0"),
        ],
    )
    def test_dyadic_taps_names_a_bad_argument(self, weights, bits, message):
        with pytest.raises(ValueError, match=message):
            matlab.dyadic_taps(weights, bits)


def test_ssim_is_the_same_to_the_bit_on_one_and_two_threads():
    """Blocks of rows are summed in their order whatever thread computed them: CSVs from
    ``docunet --jobs 1`` and ``--jobs 2`` agree (a reduction in thread order differed in the last bit)."""
    image1, image2 = _image((1, 1, 300, 211), torch.float64), _image((1, 1, 300, 211), torch.float64, seed=1)
    before = torch.get_num_threads()
    try:
        values = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            values.append(matlab.ssim(image1, image2).item())
    finally:
        torch.set_num_threads(before)
    assert values[0] == values[1]
