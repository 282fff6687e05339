"""SIFTFlowLoss, SIFTFlowWarpLoss, warp: values, reductions, masks, gradients, bad input."""

import pytest
import torch

import siftflow_nn as sf
from siftflow_nn.synthetic import synthetic_pair, textured_image, translated_pair
from tests.base import BaseTester


@pytest.fixture
def pair():
    return textured_image(24, 28, seed=1)[None], textured_image(24, 28, seed=2)[None]


class TestLosses(BaseTester):
    @pytest.mark.parametrize("metric", ["l1", "l2", "cosine", "charbonnier"])
    def test_zero_for_identical_images_and_positive_otherwise(self, metric, pair):
        image1, image2 = pair
        assert sf.sift_flow_loss(image1, image1, metric=metric).abs() < 1e-6
        assert sf.sift_flow_loss(image1, image2, metric=metric) > 0.01

    def test_metrics_against_their_definitions(self, pair):
        image1, image2 = pair
        d1, d2 = sf.sift_flow_descriptor(image1), sf.sift_flow_descriptor(image2)
        difference = d1 - d2
        expected = {
            "l1": difference.abs().sum(1).mean(),
            "l2": (difference**2).sum(1).mean(),
            "cosine": (1 - torch.nn.functional.cosine_similarity(d1, d2, dim=1)).mean(),
            "charbonnier": ((difference**2 + 1e-6).sqrt() - 1e-3).sum(1).mean(),
        }
        for metric, value in expected.items():
            self.assert_close(sf.sift_flow_loss(image1, image2, metric=metric), value, rtol=1e-5, atol=1e-6)

    def test_reductions_and_mask(self, pair):
        image1, image2 = pair
        per_pixel = sf.sift_flow_loss(image1, image2, reduction="none")
        assert per_pixel.shape == (1, 24, 28)
        self.assert_close(sf.sift_flow_loss(image1, image2, reduction="sum"), per_pixel.sum())
        mask = torch.zeros(1, 1, 24, 28, dtype=torch.bool)
        mask[..., :10, :] = True
        self.assert_close(sf.sift_flow_loss(image1, image2, mask=mask), per_pixel[:, :10].mean())
        assert torch.isnan(sf.sift_flow_loss(image1, image2, mask=torch.zeros(1, 24, 28)))  # a mean of nothing

    def test_mask_is_read_at_the_descriptor_sample_points(self, pair):
        image1, image2 = pair
        loss = sf.SIFTFlowLoss(reduction="none", cell_size=2, step_size=2, include_boundary=False)
        mask = torch.zeros(1, 1, 24, 28)
        mask[..., 4, 4] = 1  # the first sample point without the boundary is (2 * cs, 2 * cs)
        masked = loss(image1, image2, mask)
        assert masked.shape == (1, 8, 10) and (masked[0, 0, 0] > 0) and masked.flatten()[1:].abs().max() == 0

    def test_module_matches_function_and_has_no_parameters(self, pair):
        image1, image2 = pair
        module = sf.SIFTFlowLoss(metric="cosine", cell_size=[2, 3])
        assert list(module.parameters()) == [] and module.state_dict() == {}
        self.assert_close(module(image1, image2), sf.sift_flow_loss(image1, image2, "cosine", cell_size=[2, 3]))
        assert "metric='cosine'" in repr(module)

    @pytest.mark.parametrize("metric", ["l1", "l2", "cosine", "charbonnier"])
    def test_gradients_reach_both_images_and_are_finite(self, metric, pair):
        image1, image2 = (image.clone().requires_grad_(True) for image in pair)
        flat = torch.full((1, 3, 24, 28), 0.5, requires_grad=True)
        (sf.sift_flow_loss(image1, image2, metric=metric) + sf.sift_flow_loss(flat, flat, metric=metric)).backward()
        for image in (image1, image2, flat):
            assert torch.isfinite(image.grad).all()
        assert image1.grad.abs().sum() > 0 and image2.grad.abs().sum() > 0

    def test_loss_gradcheck(self):
        image1 = torch.rand(1, 1, 9, 10)
        image2 = torch.rand(1, 1, 9, 10, dtype=torch.float64)
        for metric in ("l2", "charbonnier", "cosine"):
            self.gradcheck(lambda x, metric=metric: sf.sift_flow_loss(x, image2, metric=metric), (image1,), fast=False)

    def test_warp_loss_is_zero_at_the_true_flow_and_larger_elsewhere(self):
        """Away from the borders (where the two crops' descriptors clamp differently) it is exactly 0."""
        image1, image2, flow = (t[None] for t in translated_pair(32, 40, dx=2, dy=1))
        loss = sf.SIFTFlowWarpLoss(reduction="none")
        interior = (slice(None), slice(8, -8), slice(8, -8))
        at_truth = loss(image1, image2, flow)[interior].mean()
        assert at_truth < 1e-3
        assert loss(image1, image2, torch.zeros_like(flow))[interior].mean() > 1.0
        assert loss(image1, image2, flow + 1.0)[interior].mean() > 1.0

    def test_warp_loss_gradient_points_toward_the_true_flow(self):
        image1, image2, flow = (t[None] for t in synthetic_pair(48, 48, max_displacement=1.5, seed=3))
        estimate = torch.zeros_like(flow, requires_grad=True)
        sf.sift_flow_warp_loss(image1, image2, estimate).backward()
        # A descent step must reduce the error: the negative gradient correlates with the true flow.
        assert (-estimate.grad * flow).sum() > 0

    def test_warp_loss_masks_points_that_leave_the_image(self):
        image = torch.rand(1, 3, 16, 16)
        flow = torch.zeros(1, 2, 16, 16)
        flow[:, 0] = 100.0  # every point leaves the image: nothing to compare, which is no perfect score
        assert torch.isnan(sf.sift_flow_warp_loss(image, torch.rand(1, 3, 16, 16), flow))
        assert sf.sift_flow_warp_loss(image, torch.rand(1, 3, 16, 16), flow, reduction="sum") == 0
        assert sf.sift_flow_warp_loss(image, image, flow, reduction="none").abs().max() == 0
        flow[:, 0, :, :8] = 0.0  # half the points stay: an ordinary mean over them
        assert torch.isfinite(sf.sift_flow_warp_loss(image, torch.rand(1, 3, 16, 16), flow))

    def test_cosine_distance_of_orthogonal_and_zero_descriptors(self):
        zero, first, second = torch.zeros(3, 1, 8, 1, 1)
        first[0, 0] = 1.0
        second[0, 1] = 2.0
        distance = lambda a, b: sf.descriptor_distance(a, b, "cosine").item()  # noqa: E731
        assert distance(first, second) == 1.0  # orthogonal
        assert distance(zero, first) == 1.0 and distance(first, zero) == 1.0  # nothing in common
        assert distance(zero, zero) == 0.0  # two flat regions: equal
        assert distance(first, 3 * first) == pytest.approx(0.0, abs=1e-7)
        assert distance(first, -first) == 2.0

    @pytest.mark.parametrize("mask", [-torch.ones(2, 1, 16, 20), torch.full((2, 1, 16, 20), float("inf")),
                                      torch.full((2, 1, 16, 20), float("nan"))])  # fmt: skip
    def test_masks_must_be_finite_and_non_negative(self, mask):
        images = torch.rand(2, 3, 16, 20), torch.rand(2, 3, 16, 20)
        with pytest.raises(ValueError, match="mask must hold finite, non-negative weights"):
            sf.SIFTFlowLoss()(*images, mask=mask)
        assert torch.isfinite(sf.SIFTFlowLoss()(*images, mask=torch.ones(2, 16, 20, dtype=torch.int64)))

    def test_rejects_bad_arguments(self, pair):
        image1, image2 = pair
        with pytest.raises(ValueError, match="metric must be one of"):
            sf.SIFTFlowLoss(metric="l3")
        with pytest.raises(ValueError, match="reduction must be one of"):
            sf.SIFTFlowLoss(reduction="max")
        with pytest.raises(ValueError, match=r"image1 and image2 must have the same shape, got \(1, 3, 24, 28\) and"):
            sf.sift_flow_loss(image1, image2[..., :20])
        with pytest.raises(TypeError, match="image2 must be a torch.Tensor"):
            sf.sift_flow_loss(image1, image2.numpy())
        with pytest.raises(ValueError, match=r"mask must have shape 1 x 1 x 24 x 28"):
            sf.sift_flow_loss(image1, image2, mask=torch.ones(1, 1, 12, 14))
        with pytest.raises(
            ValueError, match=r"flow must have shape 1 x 2 x 24 x 28 to match the image, got \(1, 2, 24, 27\)"
        ):
            sf.sift_flow_warp_loss(image1, image2, torch.zeros(1, 2, 24, 27))
        with pytest.raises(ValueError, match="flow must have shape"):
            sf.warp(image1, torch.zeros(1, 3, 24, 28))
