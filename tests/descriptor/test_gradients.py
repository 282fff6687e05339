"""Gradients: gradcheck in float64, finiteness at the singular points, and use as a frozen layer."""

import unittest.mock

import pytest
import torch
from torch import nn

import siftflow_nn as sf
from siftflow_nn.descriptor import row_strips as _row_strips
from tests.base import BaseTester

GRADCHECK_OPTIONS = [
    dict(cell_size=1, step_size=1, include_boundary=True),
    dict(cell_size=2, step_size=2, include_boundary=False),
    dict(cell_size=3, step_size=1, include_boundary=True, num_bins=4),
    dict(cell_size=4, step_size=2, include_boundary=True),
    dict(cell_size=[1, 2], step_size=1, include_boundary=False),
]


def _grad_of(image: torch.Tensor, **options) -> torch.Tensor:
    image = image.clone().requires_grad_(True)
    out = sf.sift_flow_descriptor(image, **options)
    (out * torch.rand(1, out.shape[1], 1, 1, dtype=image.dtype)).sum().backward()
    return image.grad


class TestGradients(BaseTester):
    @pytest.mark.parametrize("channels", [1, 3])
    @pytest.mark.parametrize("options", GRADCHECK_OPTIONS, ids=str)
    def test_gradcheck(self, options, channels):
        sizes = options["cell_size"] if isinstance(options["cell_size"], list) else [options["cell_size"]]
        side = 4 * max(sizes) + options["step_size"] + 2  # big enough for the no-boundary grid
        self.gradcheck(lambda x: sf.sift_flow_descriptor(x, **options), (torch.rand(1, channels, side, side + 1),))

    @pytest.mark.parametrize("path", ["eager", "scripted", "graph"])
    @pytest.mark.parametrize("options", GRADCHECK_OPTIONS[:2] + GRADCHECK_OPTIONS[4:], ids=str)
    def test_gradgradcheck_on_every_execution_path(self, options, path):
        """Second derivatives (gradient penalties, meta-learning): eager mode with its own gather backward,
        TorchScript, and the graph path that compile and export record."""
        module = sf.SIFTFlowDescriptor(**options)
        if path == "scripted":
            module = torch.jit.script(module)
        sizes = options["cell_size"] if isinstance(options["cell_size"], list) else [options["cell_size"]]
        side = 4 * max(sizes) + options["step_size"] + 2
        image = torch.rand(1, 2, side, side + 1)

        def run(x):
            if path == "graph":  # the path torch.compile / torch.export / jit.trace record
                with unittest.mock.patch("siftflow_nn.descriptor.paths._in_graph_capture", return_value=True):
                    return module(x)
            return module(x)

        self.gradgradcheck(run, (image,))

    def test_gradcheck_batched_full_jacobian(self):
        """One slow-mode check (every Jacobian entry) on a batch of two small RGB images.

        Slow mode runs one backward per output, so it looks at a few channels only (of every cell row).
        """
        channels = [0, 90]
        self.gradcheck(
            lambda x: sf.sift_flow_descriptor(x, cell_size=1)[:, channels], (torch.rand(2, 3, 6, 7),), fast=False
        )

    @pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
    def test_gradients_finite_on_constant_images(self, value):
        """Zero gradient everywhere: the square roots of the magnitude and of the norm are at 0."""
        grad = _grad_of(torch.full((2, 3, 12, 14), value))
        assert torch.isfinite(grad).all()

    def test_gradients_finite_at_channel_ties_and_flat_pixels(self):
        # Channels 0 and 1 have equal magnitudes with different directions (transposed ramps), the
        # third is flat, and half the image is constant (zero gradient).
        ramp = torch.linspace(0, 1, 16)
        image = torch.zeros(1, 3, 16, 16)
        image[0, 0] = ramp.view(1, 16)
        image[0, 1] = ramp.view(16, 1)
        image[..., 8:] = 0.5
        grad = _grad_of(image)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0

    def test_gradients_finite_on_float32_checkerboard(self):
        ys, xs = torch.meshgrid(torch.arange(20), torch.arange(20), indexing="ij")
        grad = _grad_of(((ys + xs) % 2).float().expand(1, 3, 20, 20).contiguous(), cell_size=[2, 3])
        assert torch.isfinite(grad).all()

    def test_backward_matches_the_functional_graph(self):
        """Eager mode uses a custom backward; TorchScript uses plain autograd ops: they must agree."""
        image = torch.rand(2, 3, 17, 19, dtype=torch.float64)
        module = sf.SIFTFlowDescriptor(cell_size=[2, 3], step_size=2)
        scripted = torch.jit.script(module)
        weights = torch.rand(1, 256, 1, 1, dtype=torch.float64)
        grads = []
        for model in (module, scripted):
            leaf = image.clone().requires_grad_(True)
            (model(leaf) * weights).sum().backward()
            grads.append(leaf.grad)
        self.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)

    def test_works_as_a_frozen_layer_after_a_trainable_conv(self):
        model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), sf.SIFTFlowDescriptor(), nn.Conv2d(128, 4, 1))
        image = torch.rand(2, 3, 16, 16, requires_grad=True)
        model(image).square().mean().backward()
        assert image.grad is not None and image.grad.abs().sum() > 0
        assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
        assert list(model[1].parameters()) == []
        assert not any(key.startswith("1.") for key in model.state_dict())

    def test_checkpoint_loads_into_a_model_with_other_descriptor_options(self):
        """Nothing of the descriptor is saved, so changing its options never breaks loading a checkpoint."""
        saved = nn.Sequential(nn.Conv2d(3, 3, 1), sf.SIFTFlowDescriptor(num_bins=8)).state_dict()
        nn.Sequential(nn.Conv2d(3, 3, 1), sf.SIFTFlowDescriptor(num_bins=4, cell_size=[2, 3])).load_state_dict(saved)

    @pytest.mark.parametrize("strip_bytes", [1, _row_strips.STRIP_BYTES], ids=["row-strips", "default-strips"])
    @pytest.mark.parametrize(
        "options",
        [
            dict(cell_size=[1, 3], step_size=3),
            dict(cell_size=2, step_size=2, include_boundary=False),
            dict(cell_size=[1, 2, 4], step_size=3, num_bins=5),
            dict(cell_size=4, step_size=1, num_bins=16),
        ],
        ids=str,
    )
    def test_no_grad_and_grad_paths_agree(self, options, strip_bytes, monkeypatch):
        """The autograd path filters the whole image; the no-grad path goes by row strips and pairs of
        opposite bands. They agree up to the summation order of the norm (1 ulp)."""
        monkeypatch.setattr(_row_strips, "STRIP_BYTES", strip_bytes)
        image = torch.rand(2, 3, 29, 41)
        with torch.no_grad():
            expected = sf.sift_flow_descriptor(image, **options)
        out = sf.sift_flow_descriptor(image.requires_grad_(True), **options)
        self.assert_close(out.detach(), expected, rtol=0, atol=1e-7)
