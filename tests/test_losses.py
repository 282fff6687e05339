"""SIFTFlowLoss, SIFTFlowWarpLoss, warp, CensusLoss: values, reductions, masks, gradients, bad input; and
kornia's Charbonnier and SSIM losses, as the loss study uses them, against their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F
from kornia.losses import charbonnier_loss, ssim_loss

import siftflow_nn as sf
from siftflow_nn.losses import CensusLoss, census_loss, census_transform, charbonnier
from siftflow_nn.synthetic import appearance_change, synthetic_pair, textured_image, translated_pair
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


def _hand_made_patch() -> torch.Tensor:
    """A 3 x 3 grey image: the centre at 100 grey levels, its neighbours 1.2 brighter (above), 1.2
    darker (left), 0.9 brighter (right) and as bright (the rest)."""
    grey = torch.full((1, 1, 3, 3), 100.0)
    grey[0, 0, 0, 1] += 1.2
    grey[0, 0, 1, 0] -= 1.2
    grey[0, 0, 1, 2] += 0.9
    return grey.double() / 255


class TestCensus(BaseTester):
    def test_transform_by_hand(self):
        # d / sqrt(0.81 + d^2): 1.2 -> 1.2 / 1.5 = 0.8, 0.9 -> 0.9 / sqrt(1.62) = 1 / sqrt(2); the window
        # row by row without its centre: up-left, up, up-right, left, right, down-left, down, down-right.
        expected = torch.tensor([0, 0.8, 0, -0.8, 1 / math.sqrt(2), 0, 0, 0], dtype=torch.float64)
        self.assert_close(census_transform(_hand_made_patch(), patch_size=3)[0, :, 1, 1], expected)
        grey_as_rgb = _hand_made_patch().expand(1, 3, 3, 3)  # kornia's luma weights sum to 1
        self.assert_close(census_transform(grey_as_rgb, patch_size=3)[0, :, 1, 1], expected)

    def test_loss_by_hand(self):
        # Against a flat patch (every sign 0) the soft Hamming distance of each neighbour is e^2 / (0.1 + e^2):
        # 0.64 / 0.74 for the two at 0.8, 0.5 / 0.6 for the one at 1 / sqrt(2), 0 for the other five; only
        # the centre's window lies inside a 3 x 3 image.
        expected = (2 * 0.64 / 0.74 + 0.5 / 0.6) / 8
        flat = torch.full((1, 1, 3, 3), 100 / 255, dtype=torch.float64)
        self.assert_close(census_loss(_hand_made_patch(), flat, patch_size=3), torch.tensor(expected))
        per_pixel = census_loss(_hand_made_patch(), flat, patch_size=3, reduction="none")
        assert per_pixel.shape == (1, 3, 3) and per_pixel.sum() == per_pixel[0, 1, 1]
        self.assert_close(census_loss(_hand_made_patch(), flat, patch_size=3, reduction="sum"), torch.tensor(expected))

    def test_zero_for_identical_images_and_positive_otherwise(self, pair):
        image1, image2 = pair
        assert census_loss(image1, image1) == 0 and CensusLoss()(image2, image2) == 0
        assert census_loss(image1, image2) > 0.3
        self.assert_close(CensusLoss(patch_size=5)(image1, image2), census_loss(image1, image2, patch_size=5))
        assert list(CensusLoss().parameters()) == [] and "patch_size=7" in repr(CensusLoss())

    def test_invariant_to_brightness_nearly_to_contrast_unlike_intensities(self):
        image = textured_image(32, 32, seed=4)[None] * 0.8 + 0.1  # room for the offset below 1
        shifted = image.roll(1, dims=-1)
        mismatch = census_loss(image, shifted)
        assert mismatch > 0.2
        self.assert_close(census_loss(image, image - 0.1), torch.tensor(0.0), atol=1e-6, rtol=0)
        assert census_loss(image, 0.8 * image + 0.1) < 0.05 * mismatch
        # A change of light (gamma, contrast, brightness, shading) moves the intensities about as much
        # as a one-pixel shift does, or more; the census much less (not nothing: neighbours a grey level
        # or two apart leave the soft sign's flat part, and a gamma per channel can reorder colours' greys).
        for seed in range(5):
            changed = appearance_change(image[0], seed=seed)[None]
            census_change = census_loss(image, changed) / mismatch
            intensity_change = (image - changed).abs().mean() / (image - shifted).abs().mean()
            assert intensity_change > 1 and census_change < 0.75 * intensity_change, (seed, census_change)

    def test_reductions_border_and_mask(self, pair):
        image1, image2 = pair
        per_pixel = census_loss(image1, image2, reduction="none")
        assert per_pixel.shape == (1, 24, 28)
        inside = per_pixel[:, 3:-3, 3:-3]
        border = per_pixel.clone()
        border[:, 3:-3, 3:-3] = 0
        assert (inside > 0).all() and (border == 0).all()  # the 3-pixel border does not count
        self.assert_close(census_loss(image1, image2), inside.mean())
        mask = torch.zeros(1, 1, 24, 28, dtype=torch.bool)
        mask[..., :10, :] = True
        self.assert_close(census_loss(image1, image2, mask=mask), per_pixel[:, 3:10, 3:-3].mean())
        self.assert_close(census_loss(image1, image2, mask=mask[:, 0].float()), per_pixel[:, 3:10, 3:-3].mean())
        assert torch.isnan(census_loss(image1, image2, mask=torch.zeros(1, 24, 28)))  # a mean of nothing

    def test_warp_loss_is_small_at_the_true_flow_and_its_gradient_points_to_it(self):
        image1, image2, flow = (t[None] for t in translated_pair(32, 40, dx=2, dy=1))

        def warp_loss(estimate):
            return census_loss(image1, sf.warp(image2, estimate), mask=sf.warp_valid_mask(estimate))

        assert warp_loss(flow) < 0.01 and warp_loss(torch.zeros_like(flow)) > 0.3
        image1, image2, flow = (t[None] for t in synthetic_pair(48, 48, max_displacement=1.5, seed=3))
        estimate = torch.zeros_like(flow, requires_grad=True)
        warp_loss(estimate).backward()
        assert (-estimate.grad * flow).sum() > 0

    def test_gradcheck(self):
        grey, rgb = torch.rand(1, 1, 5, 6, dtype=torch.float64), torch.rand(1, 3, 5, 6, dtype=torch.float64)
        self.gradcheck(lambda x: census_loss(x, grey, patch_size=3), (torch.rand(1, 1, 5, 6),), fast=False)
        self.gradcheck(lambda x: census_loss(rgb, x, patch_size=3), (torch.rand(1, 3, 5, 6),))

    def test_rejects_bad_arguments(self, pair):
        image1, image2 = pair
        with pytest.raises(ValueError, match="patch_size must be odd"):
            CensusLoss(patch_size=4)
        with pytest.raises(ValueError, match="patch_size must be a positive int, got 0"):
            census_loss(image1, image2, patch_size=0)
        with pytest.raises(ValueError, match=r"patch_size must fit in the images: a 25 x 25 patch .* 24 x 28"):
            census_loss(image1, image2, patch_size=25)
        with pytest.raises(ValueError, match="image1 must have 1 \\(grey\\) or 3 \\(RGB\\) channels, got 2"):
            census_loss(image1[:, :2], image2[:, :2])
        with pytest.raises(ValueError, match=r"image1 and image2 must have the same shape"):
            census_loss(image1, image2[..., :20])
        with pytest.raises(TypeError, match="image2 must be a torch.Tensor"):
            census_loss(image1, image2.numpy())
        with pytest.raises(ValueError, match="reduction must be one of"):
            CensusLoss(reduction="max")
        with pytest.raises(ValueError, match=r"mask must have shape 1 x 1 x 24 x 28"):
            census_loss(image1, image2, mask=torch.ones(1, 1, 12, 14))
        with pytest.raises(ValueError, match="mask must hold finite, non-negative weights"):
            census_loss(image1, image2, mask=-torch.ones(1, 1, 24, 28))


class TestKorniaLossesAsTheStudyUsesThem(BaseTester):
    """``benchmarks/bench_losses.py`` takes its photometric terms from kornia; these are the facts it
    relies on, checked against the definitions."""

    def test_charbonnier_at_the_scale_eps_is_the_smooth_l1(self):
        eps = 1e-3
        image1, image2 = torch.rand(2, 2, 3, 8, 8, dtype=torch.float64)
        difference = image1 - image2
        smooth_l1 = (difference.square() + eps**2).sqrt() - eps
        self.assert_close(eps * charbonnier_loss(image1 / eps, image2 / eps), smooth_l1)
        self.assert_close(charbonnier(difference, eps), smooth_l1)
        # Unscaled, kornia's is sqrt(e^2 + 1) - 1: close to e^2 / 2 on [0, 1] images, an L2, not an L1.
        unscaled = charbonnier_loss(image1, image2)
        assert (unscaled - difference.square() / 2).abs().max() < 0.13 and (unscaled < difference.abs()).all()

    def test_ssim_loss_is_its_definition(self):
        image1, image2 = torch.rand(2, 2, 3, 10, 12, dtype=torch.float64)
        window, sigma = 3, 1.5
        taps = torch.exp(-((torch.arange(window, dtype=torch.float64) - window // 2) ** 2) / (2 * sigma**2))
        kernel = (taps[:, None] * taps[None, :] / taps.sum() ** 2).expand(3, 1, window, window)

        def mean(values):  # the Gaussian-weighted local mean, reflected at the border
            return F.conv2d(F.pad(values, [window // 2] * 4, mode="reflect"), kernel, groups=3)

        mu1, mu2 = mean(image1), mean(image2)
        var1, var2, covariance = mean(image1**2) - mu1**2, mean(image2**2) - mu2**2, mean(image1 * image2) - mu1 * mu2
        c1, c2 = 0.01**2, 0.03**2
        ssim = (2 * mu1 * mu2 + c1) * (2 * covariance + c2) / ((mu1**2 + mu2**2 + c1) * (var1 + var2 + c2))
        expected = ((1 - ssim) / 2).clamp(0, 1)
        self.assert_close(ssim_loss(image1, image2, window, reduction="none", eps=0.0), expected)
        assert ssim_loss(image1, image1, window) < 1e-6
