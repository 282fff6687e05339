"""The descriptor's fixed filters against well-kept equivalents, and its options, checked once."""

import kornia
import numpy as np
import pytest
import torch

from siftflow_nn.descriptor import descriptor_options
from siftflow_nn.descriptor.kernels import orientation_bands, orientation_basis, sobel_gradients
from siftflow_nn.descriptor.options import minimum_length, output_length
from tests.base import BaseTester


class TestKernels(BaseTester):
    def test_sobel_equals_kornias_unnormalised_spatial_gradient(self):
        """Ours is a few shifted slices (faster on the CPU than kornia's conv); the numbers are the same."""
        image = torch.rand(2, 3, 17, 23, dtype=torch.float64)
        gx, gy = sobel_gradients(image)
        theirs = kornia.filters.spatial_gradient(image, mode="sobel", order=1, normalized=False)
        self.assert_close(gx, theirs[:, :, 0], rtol=0, atol=1e-15)
        self.assert_close(gy, theirs[:, :, 1], rtol=0, atol=1e-15)

    def test_bands_are_the_ninth_power_of_the_positive_projection_times_the_magnitude(self):
        gx, gy = torch.randn(1, 1, 5, 6, dtype=torch.float64), torch.randn(1, 1, 5, 6, dtype=torch.float64)
        basis = orientation_basis(8, torch.float64)
        magnitude = torch.sqrt(gx**2 + gy**2)
        projection = ((gx * basis[0].view(1, -1, 1, 1) + gy * basis[1].view(1, -1, 1, 1)) / magnitude).clamp_min(0)
        expected = projection**9 * magnitude
        for inplace in (False, True):  # the no-grad path computes half the bands and mirrors them
            self.assert_close(orientation_bands(gx, gy, basis, inplace=inplace), expected, rtol=1e-12, atol=1e-15)

    def test_opposite_bands_point_exactly_the_other_way(self):
        basis = orientation_basis(8)
        assert torch.equal(basis[:, 4:], -basis[:, :4])

    def test_options_are_checked_once_and_give_the_originals_sizes(self):
        options = descriptor_options(np.int64(3), 2, False, 8)
        assert options.cell_sizes == [3] and isinstance(options.cell_sizes[0], int)
        assert output_length(37, options) == (37 - 12) // 2 and minimum_length(options) == 14
        with pytest.raises(ValueError, match="step_size must be a positive int, got 0"):
            descriptor_options(2, 0)
        with pytest.raises(TypeError, match="include_boundary must be a bool"):
            descriptor_options(2, 1, "yes")
