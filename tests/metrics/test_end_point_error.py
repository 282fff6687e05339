"""The end-point error: its definition, the margin, bad shapes."""

import pytest
import torch

import siftflow_nn as sf
from tests.base import BaseTester


class TestEndPointError(BaseTester):
    def test_mean_euclidean_distance_inside_the_margin(self):
        truth = torch.zeros(1, 2, 6, 8)
        flow = truth.clone()
        flow[0, 0, 2:4, 2:6] = 3.0  # the interior differs by (3, 4) ...
        flow[0, 1, 2:4, 2:6] = 4.0
        flow[0, :, 0] = 100.0  # ... and the first row wildly
        assert sf.end_point_error(flow, truth, margin=2).item() == pytest.approx(5.0 * 8 / 8)
        assert sf.end_point_error(flow, truth).item() > 5

    def test_bad_shapes_and_margins(self):
        with pytest.raises(ValueError, match="must have one shape"):
            sf.end_point_error(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))
        with pytest.raises(ValueError, match="margin must leave some"):
            sf.end_point_error(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), margin=2)
