"""SIFTFlowLoss, SIFTFlowWarpLoss, warp: values, reductions, masks, gradients, bad input."""

import torch

import siftflow_nn as sf
from siftflow_nn.synthetic import translated_pair
from tests.base import BaseTester


class TestWarp(BaseTester):
    def test_warp_recovers_a_translation(self):
        image1, image2, flow = translated_pair(20, 24, dx=3, dy=-2)
        warped = sf.warp(image2[None], flow[None])[0]
        self.assert_close(warped[:, 2:-2, 3:-3], image1[:, 2:-2, 3:-3])
        valid = sf.warp_valid_mask(flow[None])[0, 0]
        assert valid[2:, :-3].all() and not valid[:, -3:].any() and not valid[:2].any()

    def test_warp_gradcheck(self):
        self.gradcheck(sf.warp, (torch.rand(1, 2, 6, 7), torch.rand(1, 2, 6, 7) * 3 - 1.5), fast=False)

    def test_a_nan_flow_gives_a_nan_loss_and_no_crash(self):
        """grid_sample's backward can write out of bounds for NaN coordinates: it must never see them."""
        flow = torch.zeros(1, 2, 32, 40)
        flow[0, 0, 5, 5] = float("nan")
        flow.requires_grad_()
        warped = sf.warp(torch.rand(1, 3, 32, 40), flow)
        warped.sum().backward()
        assert torch.isnan(warped[0, :, 5, 5]).all() and torch.isfinite(warped[0, :, 6, 6]).all()
        assert torch.isfinite(flow.grad).all()
        everywhere = torch.full((1, 2, 24, 24), float("nan"), requires_grad=True)
        image = torch.rand(1, 3, 24, 24)
        loss = sf.SIFTFlowWarpLoss()(image, image, everywhere)
        loss.backward()
        assert torch.isnan(loss)
        infinite = torch.zeros(1, 2, 24, 24)
        infinite[0, 1, 3, 3] = float("inf")
        assert torch.isnan(sf.warp(image, infinite)[0, :, 3, 3]).all()
