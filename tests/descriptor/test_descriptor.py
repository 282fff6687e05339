"""SIFTFlowDescriptor and sift_flow_descriptor: shapes, options, dtypes, devices, properties, bad input."""

import numpy as np
import pytest
import torch

import siftflow_nn as sf
from siftflow_nn.descriptor import row_strips as _row_strips
from siftflow_nn.synthetic import textured_image
from tests.base import BaseTester

OPTION_SETS = [
    dict(cell_size=1, step_size=1, include_boundary=True, num_bins=8),
    dict(cell_size=2, step_size=2, include_boundary=False, num_bins=8),
    dict(cell_size=3, step_size=3, include_boundary=True, num_bins=4),
    dict(cell_size=4, step_size=2, include_boundary=True, num_bins=16),
    dict(cell_size=[2, 3], step_size=1, include_boundary=False, num_bins=8),
]


def _expected_shape(batch, height, width, cell_size, step_size, include_boundary, num_bins):
    sizes = cell_size if isinstance(cell_size, list) else [cell_size]
    if include_boundary:
        out_h, out_w = height // step_size, width // step_size
    else:
        out_h, out_w = (height - 4 * max(sizes)) // step_size, (width - 4 * max(sizes)) // step_size
    return (batch, 16 * num_bins * len(sizes), out_h, out_w)


def _hard_images(device: torch.device) -> torch.Tensor:
    """The worst cases for low precision: a full-contrast 1-pixel checkerboard and uniform noise."""
    ys, xs = torch.meshgrid(torch.arange(48), torch.arange(64), indexing="ij")
    checker = ((ys + xs) % 2).float().expand(3, 48, 64)
    return torch.stack([checker, torch.rand(3, 48, 64)]).to(device)


class TestSIFTFlowDescriptor(BaseTester):
    @pytest.mark.parametrize("options", OPTION_SETS, ids=str)
    def test_shape_and_module_equals_function(self, options, device, dtype):
        image = torch.rand(2, 3, 29, 41, device=device, dtype=dtype)
        module = sf.SIFTFlowDescriptor(**options).to(device)
        out = module(image)
        assert out.shape == _expected_shape(2, 29, 41, **options)
        assert out.dtype == dtype and out.device.type == device.type
        self.assert_close(out, sf.sift_flow_descriptor(image, **options), rtol=0, atol=0)
        assert module.output_size(29, 41) == out.shape[2:]
        assert module.descriptor_dim == out.shape[1]

    @pytest.mark.parametrize("channels", [1, 2, 3, 5])
    def test_any_number_of_channels(self, channels):
        image = torch.rand(1, channels, 20, 24)
        out = sf.sift_flow_descriptor(image)
        assert out.shape == (1, 128, 20, 24) and torch.isfinite(out).all()

    def test_single_channel_equals_replicated_channels(self):
        """With identical channels every pixel ties; the first channel wins and equals the gray result."""
        gray = torch.rand(1, 1, 24, 24)
        self.assert_close(sf.sift_flow_descriptor(gray.expand(1, 3, 24, 24)), sf.sift_flow_descriptor(gray))

    def test_batch_items_are_independent(self, device):
        images = torch.rand(3, 3, 30, 34, device=device)
        batched = sf.sift_flow_descriptor(images)
        for index in range(3):
            self.assert_close(batched[index : index + 1], sf.sift_flow_descriptor(images[index : index + 1]))

    def test_channels_last_and_non_contiguous_input(self):
        image = torch.rand(2, 3, 26, 30)
        expected = sf.sift_flow_descriptor(image)
        self.assert_close(sf.sift_flow_descriptor(image.to(memory_format=torch.channels_last)), expected)
        wide = torch.rand(2, 3, 26, 60)[..., ::2]  # a strided view
        self.assert_close(sf.sift_flow_descriptor(wide), sf.sift_flow_descriptor(wide.contiguous()))

    def test_float64_and_float32_agree(self):
        image = textured_image(40, 48)[None]
        self.assert_close(
            sf.sift_flow_descriptor(image), sf.sift_flow_descriptor(image.double()).float(), rtol=0, atol=2e-6
        )

    def test_descriptors_are_unit_norm_up_to_the_offset(self):
        """Each 16*num_bins block is divided by (norm + 0.01): its norm is norm / (norm + 0.01) < 1."""
        out = sf.sift_flow_descriptor(textured_image(32, 32)[None], cell_size=[2, 3])
        for block in out.split(128, dim=1):
            norms = block.norm(dim=1)
            assert (norms < 1).all() and (norms > 0.9).all()

    def test_channel_layout_is_the_originals(self):
        """A vertical edge at x = 12: only the bands facing +x (bin 0, and its cos^9 neighbours) respond."""
        image = torch.zeros(1, 1, 24, 24)
        image[..., 12:] = 1.0
        out = sf.sift_flow_descriptor(image, cell_size=2, num_bins=8)  # (1, 128, 24, 24)
        cells = out[0, :, 10, 11].view(4, 4, 8)  # (row, col, bin) around x = 11
        assert cells[..., 0].sum() > 0
        assert cells[..., 3:6].abs().max() == 0  # bins pointing to -x see no gradient
        # The cell offsets -1..2 in x read columns 9, 11, 13, 15; with the filter reaching x-2..x+1
        # only the columns near the edge (offsets 0 and 1) respond.
        column_energy = cells[..., 0].sum(dim=0)
        assert column_energy[0] == 0 and column_energy[3] == 0
        assert column_energy[1] > 0 and column_energy[2] > 0

    @pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
    def test_constant_images_give_zero_finite_descriptors(self, value):
        out = sf.sift_flow_descriptor(torch.full((2, 3, 16, 20), value))
        assert torch.isfinite(out).all() and out.abs().max() == 0

    @pytest.mark.parametrize("strip_bytes", [1, _row_strips.STRIP_BYTES], ids=["row-strips", "default-strips"])
    def test_nan_pixel_affects_only_its_support(self, strip_bytes, monkeypatch):
        """A NaN at row r reaches gradient rows r-1..r+1, cell rows r-2..r+1+cs, descriptors r-2-2cs..r+1+2cs."""
        monkeypatch.setattr(_row_strips, "STRIP_BYTES", strip_bytes)
        cell_size, row, col = 2, 15, 17
        image = torch.rand(1, 3, 32, 36)
        image[0, 1, row, col] = float("nan")
        out = sf.sift_flow_descriptor(image, cell_size=cell_size)
        nan_pixels = torch.isnan(out[0]).any(dim=0)
        assert nan_pixels.any()
        assert torch.isnan(out[0][:, nan_pixels]).all(), "a descriptor with a NaN should be NaN throughout"

        before, after = 2 + 2 * cell_size, 1 + 2 * cell_size
        ys, xs = torch.nonzero(nan_pixels, as_tuple=True)
        assert (ys.min(), ys.max()) == (row - before, row + after)
        assert (xs.min(), xs.max()) == (col - before, col + after)
        assert torch.isfinite(out[0][:, ~nan_pixels]).all()

    def test_module_has_no_parameters_and_an_empty_state_dict(self):
        module = sf.SIFTFlowDescriptor(cell_size=[2, 3])
        assert list(module.parameters()) == []
        assert module.state_dict() == {}
        module.to(torch.float64)
        assert module.basis.dtype == torch.float64

    def test_repr_shows_the_options(self):
        assert repr(sf.SIFTFlowDescriptor(cell_size=3, step_size=2, include_boundary=False, num_bins=4)) == (
            "SIFTFlowDescriptor(cell_size=3, step_size=2, include_boundary=False, num_bins=4)"
        )

    def test_to_uint8_truncates_like_the_original(self):
        values = torch.tensor([0.0, 1 / 255 - 1e-7, 1 / 255 + 1e-7, 0.5, 0.9999, 1.0, 1.5])
        assert sf.to_uint8(values).tolist() == [0, 0, 1, 127, 254, 255, 255]
        assert sf.to_uint8(values.to(torch.bfloat16)).dtype == torch.uint8

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
    def test_to_uint8_large_and_strided_inputs(self, device, dtype):
        # More elements than the CPU path's scratch chunk, with a ragged last chunk, seen through a
        # permutation: every element must land at its own index, truncated as in the scalar case
        # (the product taken in float32, or float64 for float64 input, as the original does).
        values = torch.rand(3, 130, 41, 53, device=device) * 1.2
        values = values.to(dtype).permute(0, 2, 3, 1)
        work = values.cpu().numpy() if dtype == torch.float64 else values.float().cpu().numpy()
        expected = np.minimum(np.trunc(work * work.dtype.type(255)), 255).astype(np.uint8)
        result = sf.to_uint8(values)
        assert result.shape == values.shape and result.device == values.device
        np.testing.assert_array_equal(result.cpu().numpy(), expected)

    def test_descriptor_to_hwc_layout(self):
        descriptor = torch.rand(2, 128, 5, 7)
        hwc = sf.descriptor_to_hwc(descriptor)
        assert hwc.shape == (2, 5, 7, 128) and hwc.is_contiguous()
        assert torch.equal(hwc[1, 3, 4], descriptor[1, :, 3, 4])

    def test_descriptor_size_matches_output(self):
        assert sf.descriptor_size(37, 53, cell_size=3, step_size=2, include_boundary=False) == (12, 20)
        assert sf.sift_flow_descriptor(torch.rand(1, 1, 37, 53), 3, 2, False).shape[2:] == (12, 20)

    def test_bfloat16_autocast_on_cpu(self):
        images = _hard_images(torch.device("cpu"))
        reference = sf.sift_flow_descriptor(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = sf.SIFTFlowDescriptor()(images)
        assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
        # bf16 keeps 8 significant bits: values in [0, 1] round by at most 2^-9 (measured: 0.0039).
        assert (out.float() - reference).abs().max() <= 2**-8

    def test_half_precision_inputs_on_cpu(self):
        """Half inputs are filtered in float32; only the output is rounded to the input's precision."""
        images = _hard_images(torch.device("cpu"))
        for low in (torch.float16, torch.bfloat16):
            out = sf.sift_flow_descriptor(images.to(low))
            assert out.dtype == low and torch.isfinite(out).all()
            reference = sf.sift_flow_descriptor(images.to(low).float())
            assert (out.float() - reference).abs().max() <= 2**-9  # half an ulp of bf16 at 1

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_float16_on_cuda(self):
        images = _hard_images(torch.device("cuda"))
        reference = sf.sift_flow_descriptor(images)
        with torch.autocast("cuda", dtype=torch.float16):
            out = sf.SIFTFlowDescriptor().cuda()(images)
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        assert (out.float() - reference).abs().max() <= 2**-10  # fp16: 11 significant bits
        out = sf.sift_flow_descriptor(images.half())
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        assert (out.float() - sf.sift_flow_descriptor(images.half().float())).abs().max() <= 2**-10

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
    def test_cuda_matches_cpu(self):
        image = textured_image(64, 80)[None].expand(2, -1, -1, -1)
        for options in OPTION_SETS:
            cpu = sf.sift_flow_descriptor(image, **options)
            cuda = sf.sift_flow_descriptor(image.cuda(), **options).cpu()
            self.assert_close(cuda, cpu, rtol=0, atol=1e-5)

    def test_rejects_non_tensor(self):
        with pytest.raises(TypeError, match="image must be a torch.Tensor"):
            sf.sift_flow_descriptor([[0.0]])

    @pytest.mark.parametrize("shape", [(32, 32), (3, 32, 32), (1, 1, 3, 32, 32)])
    def test_rejects_wrong_rank(self, shape):
        with pytest.raises(
            ValueError, match=r"B x C x H x W.*" + str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")
        ):
            sf.SIFTFlowDescriptor()(torch.rand(shape))

    def test_rejects_integer_images(self):
        with pytest.raises(TypeError, match=r"torch.uint8.*\.float\(\) / 255"):
            sf.sift_flow_descriptor(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))

    def test_rejects_images_too_small_for_the_options(self):
        with pytest.raises(ValueError, match="at least 13"):
            sf.sift_flow_descriptor(torch.rand(1, 1, 12, 40), cell_size=3, step_size=1, include_boundary=False)
        with pytest.raises(ValueError, match="at least 4"):
            sf.sift_flow_descriptor(torch.rand(1, 1, 3, 40), step_size=4)
        assert sf.sift_flow_descriptor(torch.rand(1, 1, 13, 13), 3, 1, False).shape == (1, 128, 1, 1)

    @pytest.mark.parametrize(
        ("options", "error", "name"),
        [
            (dict(cell_size=0), ValueError, "cell_size"),
            (dict(cell_size=2.5), TypeError, "cell_size"),
            (dict(cell_size=[]), ValueError, "cell_size"),
            (dict(cell_size=[2, -1]), ValueError, r"cell_size\[1\]"),
            (dict(step_size=0), ValueError, "step_size"),
            (dict(step_size=True), TypeError, "step_size"),
            (dict(num_bins=-8), ValueError, "num_bins"),
            (dict(num_bins="8"), TypeError, "num_bins"),
        ],
    )
    def test_rejects_bad_options_at_construction(self, options, error, name):
        with pytest.raises(error, match=name):
            sf.SIFTFlowDescriptor(**options)
        with pytest.raises(error, match=name):
            sf.sift_flow_descriptor(torch.rand(1, 1, 16, 16), **options)

    def test_tiny_images(self):
        """One-pixel images are valid with the boundary (every sample clamps to the one pixel)."""
        assert sf.sift_flow_descriptor(torch.rand(1, 3, 1, 1)).shape == (1, 128, 1, 1)
        out = sf.sift_flow_descriptor(torch.rand(2, 1, 1, 9), cell_size=3)
        assert out.shape == (2, 128, 1, 9) and torch.isfinite(out).all()
        assert out.abs().sum() > 0  # the row still has x gradients

    @pytest.mark.parametrize("options", [dict(), dict(cell_size=[2, 3], step_size=2)], ids=str)
    def test_out_receives_the_result(self, device, options):
        images = textured_image(30, 34, channels=3, seed=4)[None].expand(2, -1, -1, -1).contiguous().to(device)
        expected = sf.sift_flow_descriptor(images, **options)
        out = torch.full_like(expected, float("nan"))
        assert sf.sift_flow_descriptor(images, **options, out=out) is out
        assert torch.equal(out, expected)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
    @pytest.mark.parametrize("strip_bytes", [1, None], ids=["one-row strips", "default strips"])
    @pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format], ids=["hwc", "chw"])
    def test_uint8_out_receives_to_uint8_of_the_result(self, device, dtype, strip_bytes, layout, monkeypatch):
        """What the SIFT flow matcher and the DocUNet metrics take: the original's stored bytes,
        strip by strip (one row per strip as well), the same as ``to_uint8``; channels last is
        written straight from the cell maps, other layouts through a float buffer."""
        if strip_bytes is not None:
            monkeypatch.setattr("siftflow_nn.descriptor.row_strips.STRIP_BYTES", strip_bytes)
            monkeypatch.setattr("siftflow_nn.descriptor.paths.STORED_STRIP_BYTES", strip_bytes)
        images = _hard_images(device).to(dtype)
        for options in (dict(cell_size=3, derivative="release"), dict(cell_size=[2, 3], step_size=2)):
            expected = sf.to_uint8(sf.sift_flow_descriptor(images, **options))
            out = torch.full_like(expected, 7).contiguous(memory_format=layout)
            assert sf.sift_flow_descriptor(images, **options, out=out) is out
            assert out.is_contiguous(memory_format=layout) and torch.equal(out, expected)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
    @pytest.mark.parametrize("width", [61, 13, 3])
    def test_uint8_out_at_any_width_and_with_nan_equals_to_uint8(self, dtype, width):
        """The compiled writer takes a vector of pixels at a time and the rest one by one; NaN reads as 0."""
        images = _hard_images(torch.device("cpu"))[..., :width].to(dtype).contiguous()
        images[1, :, 5, 2] = float("nan")
        expected = sf.to_uint8(sf.sift_flow_descriptor(images, cell_size=2))
        out = torch.empty(expected.shape, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
        sf.sift_flow_descriptor(images, cell_size=2, out=out)
        assert torch.equal(out, expected) and (expected[1] == 0).any()

    def test_uint8_out_under_autocast_truncates_like_to_uint8(self):
        images = _hard_images(torch.device("cpu"))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected = sf.to_uint8(sf.sift_flow_descriptor(images))
            out = sf.sift_flow_descriptor(images, out=torch.empty(expected.shape, dtype=torch.uint8))
        assert torch.equal(out, expected)

    @pytest.mark.parametrize(
        ("out", "message"),
        [
            (torch.empty(2, 128, 16, 17), r"shape \(2, 128, 16, 16\)"),
            (torch.empty(2, 128, 16, 16, dtype=torch.float64), r"torch.float32 \(or uint8\) tensor"),
            (torch.empty(1, 128, 16, 16), r"got a torch.float32 tensor of shape \(1, 128, 16, 16\)"),
        ],
    )
    def test_out_that_does_not_fit_is_rejected(self, out, message):
        with pytest.raises(ValueError, match=message):
            sf.sift_flow_descriptor(torch.rand(2, 3, 16, 16), out=out)

    def test_out_refuses_autograd(self):
        images = torch.rand(1, 3, 16, 16, requires_grad=True)
        with pytest.raises(ValueError, match="out= does not support autograd"):
            sf.sift_flow_descriptor(images, out=torch.empty(1, 128, 16, 16))
        with torch.no_grad():
            sf.sift_flow_descriptor(images, out=torch.empty(1, 128, 16, 16))

    def test_integer_like_options_from_configs_are_accepted(self):
        """NumPy integers and 0-d integer tensors (as configs and sweeps produce them) are ints."""
        image = torch.rand(1, 1, 20, 20)
        expected = sf.sift_flow_descriptor(image, cell_size=2, step_size=2)
        for cell_size, step in ((np.int64(2), np.int32(2)), (torch.tensor(2), torch.tensor(2)), ([np.int64(2)], 2)):
            self.assert_close(sf.sift_flow_descriptor(image, cell_size=cell_size, step_size=step), expected)
        assert sf.SIFTFlowDescriptor(cell_size=np.int64(3), include_boundary=np.bool_(False)).cell_sizes == [3]
        assert sf.SIFTFlow(num_levels=np.int64(2)).num_levels == 2

    @pytest.mark.parametrize(
        ("build", "error", "message"),
        [
            (lambda: sf.SIFTFlowDescriptor(include_boundary="no"), TypeError,
             "include_boundary must be a bool, got str"),
            (lambda: sf.sift_flow_descriptor(torch.rand(1, 1, 9, 9), include_boundary="no"), TypeError,
             "include_boundary must be a bool"),
            (lambda: sf.SIFTFlowDescriptor()(torch.rand(1, 3, 16, 16, device="meta")), ValueError,
             "image is on the meta device"),
        ],
    )  # fmt: skip
    def test_bad_values_get_a_clear_error(self, build, error, message):
        with pytest.raises(error, match=message):
            build()
