"""local_match, soft_local_match and SIFTFlow: accuracy on pairs with known flow, the original's energy."""

import math

import pytest
import torch

from siftflow_nn.flow.local_matching import local_match, soft_local_match
from siftflow_nn.flow.sift_flow import SIFTFlow
from siftflow_nn.synthetic import synthetic_pair, translated_pair
from tests.base import BaseTester


class TestLocalMatching(BaseTester):
    def test_local_match_recovers_a_translation_exactly(self):
        image1, image2, truth = translated_pair(48, 64, dx=3, dy=-2)
        flow, score = local_match(*self.descriptor_pair(image1, image2), radius=4)
        assert flow.shape == (1, 2, 48, 64) and score.shape == (1, 48, 64)
        assert self.epe(flow[0], truth) == 0

    def test_local_match_equals_brute_force_on_random_descriptors(self):
        d1, d2 = torch.rand(2, 16, 9, 11), torch.rand(2, 16, 9, 11)
        flow, score = local_match(d1, d2, radius=2)
        for b, y, x in [(0, 0, 0), (1, 4, 5), (0, 8, 10), (1, 2, 9)]:
            best, best_uv = -math.inf, None
            for v in range(-2, 3):
                for u in range(-2, 3):
                    if 0 <= y + v < 9 and 0 <= x + u < 11:
                        value = float((d1[b, :, y, x] * d2[b, :, y + v, x + u]).sum())
                        if value > best:
                            best, best_uv = value, (u, v)
            assert flow[b, :, y, x].tolist() == [float(c) for c in best_uv]
            assert math.isclose(score[b, y, x].item(), best, rel_tol=1e-5)

    def test_local_match_prefers_no_motion_on_ties(self):
        flow, _ = local_match(torch.zeros(1, 8, 6, 6), torch.zeros(1, 8, 6, 6), radius=2)
        assert flow.abs().max() == 0

    def test_soft_local_match_is_differentiable_and_approaches_the_hard_match(self):
        image1, image2, truth = translated_pair(40, 48, dx=-2, dy=1)
        d1, d2 = self.descriptor_pair(image1, image2)
        d1.requires_grad_(True)
        soft = soft_local_match(d1, d2, radius=3, temperature=0.005)
        assert abs(self.epe(soft[0].detach(), truth)) < 0.05
        soft.sum().backward()
        assert torch.isfinite(d1.grad).all() and d1.grad.abs().sum() > 0

    def test_local_match_bad_input(self):
        with pytest.raises(ValueError, match=r"d1 and d2 must have the same shape"):
            local_match(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 6))
        with pytest.raises(ValueError, match="d1 must be a B x D x H x W"):
            local_match(torch.rand(8, 5, 5), torch.rand(8, 5, 5))
        with pytest.raises(ValueError, match="temperature must be positive"):
            soft_local_match(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5), temperature=0)

    def test_sift_flow_beats_local_matching_on_a_noisy_smooth_warp(self):
        image1, image2, truth = synthetic_pair(96, 128, max_displacement=4.0, seed=4, noise=0.05)
        sift_flow = self.epe(SIFTFlow()(image1[None], image2[None])[0], truth)
        local = self.local_match_epe(image1, image2, truth, radius=5)
        assert sift_flow < 0.6 * local, (sift_flow, local)
        assert sift_flow < 0.7  # the best integer flow scores about 0.38 here

    @pytest.mark.parametrize(
        ("radius", "error", "message"),
        [
            (-1, ValueError, "radius must be a non-negative int, got -1"),
            (True, TypeError, "radius must be a non-negative int, got bool"),
            (2.0, TypeError, "radius must be a non-negative int, got float"),
        ],
    )
    def test_radius_must_be_a_non_negative_int(self, radius, error, message):
        with pytest.raises(error, match=message):
            local_match(torch.rand(1, 8, 5, 5), torch.rand(1, 8, 5, 5), radius=radius)
