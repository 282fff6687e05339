"""local_match, soft_local_match and SIFTFlow: accuracy on pairs with known flow, the original's energy."""

import math
import warnings

import numpy as np
import pytest
import torch

import siftflow_nn as sf
from siftflow_nn.flow.belief_propagation import data_term
from siftflow_nn.flow.pyramid import _wrap_to_uint8, descriptor_pyramid, descriptor_pyramid_hwc
from siftflow_nn.flow.sift_flow import SIFTFlow
from siftflow_nn.flow.warp import warp
from siftflow_nn.synthetic import synthetic_pair, textured_image, translated_pair
from tests.base import BaseTester
from tests.conftest import REFERENCE


def _load_flow_case(name: str) -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "flow" / f"{name}.npz") as archive:
        return {key: archive[key] for key in archive.files}


def _sift(case: dict[str, np.ndarray], key: str) -> torch.Tensor:
    return torch.from_numpy(case[key]).permute(2, 0, 1)[None].float()


FLOW_CASES = ["translate_3_m2_astronaut_96x128", "translate_m6_5_camera_112x112", "sinewarp_coffee_120x160"]


def _descriptors_u8(image1: torch.Tensor, image2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d1, d2 = BaseTester.descriptor_pair(image1, image2)
    return sf.to_uint8(d1), sf.to_uint8(d2)


class TestSIFTFlow(BaseTester):
    @pytest.mark.parametrize("name", FLOW_CASES)
    @pytest.mark.usefixtures("every_build")
    def test_energy_matches_the_original_exactly(self, name):
        """Our energy of the original's final labelling equals the energy the original reported."""
        case = _load_flow_case(name)
        flow = torch.from_numpy(np.stack([case["L1_vx"], case["L1_vy"]]))[None].float()
        offset = torch.from_numpy(np.stack([case["L1_offset_x"], case["L1_offset_y"]]))[None].float()
        ours = SIFTFlow().energy(_sift(case, "sift1"), _sift(case, "sift2"), flow, offset)
        assert ours.item() == case["L1_energy"][-1]

    def test_descriptors_of_the_flow_cases_match_the_original(self):
        case = _load_flow_case("translate_3_m2_astronaut_96x128")
        image = torch.from_numpy(case["im1"]).permute(2, 0, 1)[None].float() / 255
        ours = sf.to_uint8(sf.descriptor_to_hwc(sf.sift_flow_descriptor(image, cell_size=3)))[0].numpy()
        assert (np.abs(ours.astype(int) - case["sift1"].astype(int)) <= 1).mean() > 0.99  # ties included

    @pytest.mark.parametrize("name", FLOW_CASES)
    def test_accuracy_matches_the_original_on_its_pairs(self, name):
        case = _load_flow_case(name)
        flow, levels = SIFTFlow().match(_sift(case, "sift1"), _sift(case, "sift2"))
        truth = torch.from_numpy(np.stack([case["gt_vx"], case["gt_vy"]])).float()
        original = torch.from_numpy(np.stack([case["vx"], case["vy"]])).float()
        ours, theirs = self.epe(flow[0], truth), self.epe(original, truth)
        # Translations: exact away from the borders, as the original; the sine warp: within 0.1 px of it.
        assert ours <= theirs + 0.1, (ours, theirs)
        assert (flow[0] == original).all(0).float().mean() > 0.85
        assert len(levels) == 4 and all(level["energy"][-1] <= level["energy"][0] for level in levels)
        final_energy = levels[0]["energy"][-1].item()
        assert final_energy <= 1.01 * case["L1_energy"][-1]  # within 1% of the original's optimum

    def test_sift_flow_exact_on_a_translation_with_a_brightness_change(self):
        image1, image2, truth = translated_pair(96, 112, dx=-5, dy=4, seed=3)
        image2 = 0.7 * image2 + 0.1  # darker, lower contrast
        flow = SIFTFlow()(image1[None], image2[None])[0]
        assert self.epe(flow, truth) == 0

    def test_sift_flow_on_a_small_rotation(self):
        """Image 2 is image 1 rotated by 3 degrees about the centre: up to 5 px of motion at the corners."""
        height, width = 96, 128
        image2 = textured_image(height, width, seed=5)
        angle = math.radians(3.0)
        ys, xs = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
        cy, cx = (height - 1) / 2, (width - 1) / 2
        truth = torch.stack(
            [
                math.cos(angle) * (xs - cx) - math.sin(angle) * (ys - cy) + cx - xs,
                math.sin(angle) * (xs - cx) + math.cos(angle) * (ys - cy) + cy - ys,
            ]
        )
        image1 = warp(image2[None], truth[None])[0]
        sift_flow = self.epe(SIFTFlow()(image1[None], image2[None])[0], truth)
        assert sift_flow < 0.6  # integer flow: the best possible is about 0.38
        assert sift_flow <= self.local_match_epe(image1, image2, truth, radius=6)

    def test_fast_mode_is_close(self):
        image1, image2, truth = synthetic_pair(64, 80, max_displacement=3.0, seed=6, noise=0.03)
        assert self.epe(SIFTFlow(fast=True)(image1[None], image2[None])[0], truth) < 0.8

    def test_batches_are_independent(self):
        pairs = [synthetic_pair(40, 48, 2.0, seed=seed) for seed in (7, 8)]
        image1 = torch.stack([pair[0] for pair in pairs])
        image2 = torch.stack([pair[1] for pair in pairs])
        matcher = SIFTFlow(num_levels=2, iterations=8, top_iterations=8)
        batched = matcher(image1, image2)
        for index in range(2):
            self.assert_close(batched[index : index + 1], matcher(image1[index : index + 1], image2[index : index + 1]))

    def test_sift_flow_bad_input(self):
        with pytest.raises(ValueError, match=r"image1 and image2 must have the same shape"):
            SIFTFlow()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))
        with pytest.raises(ValueError, match="too small for num_levels=4: height and width must be at least 9"):
            SIFTFlow()(torch.rand(1, 3, 8, 32), torch.rand(1, 3, 8, 32))
        with pytest.raises(ValueError, match="num_levels must be a positive int"):
            SIFTFlow(num_levels=0)
        with pytest.raises(ValueError, match="alpha must be a non-negative finite number, got -1"):
            SIFTFlow(alpha=-1)

    @pytest.mark.parametrize("name", FLOW_CASES)
    @pytest.mark.usefixtures("every_build")
    def test_compiled_solver_reproduces_the_original_at_every_level(self, name):
        """Pyramid, offsets, every iteration's energy and the flow of every level equal the original's."""
        case = _load_flow_case(name)
        flow, levels = SIFTFlow(solver="compiled").match(_sift(case, "sift1"), _sift(case, "sift2"))
        for index, level in enumerate(levels):
            key = f"L{index + 1}"
            np.testing.assert_array_equal(level["energy"][:, 0].numpy(), case[f"{key}_energy"])
            offset = np.stack([case[f"{key}_offset_x"], case[f"{key}_offset_y"]])
            np.testing.assert_array_equal(level["offset"][0].numpy(), offset)
            np.testing.assert_array_equal(level["flow"][0].numpy(), np.stack([case[f"{key}_vx"], case[f"{key}_vy"]]))
        np.testing.assert_array_equal(flow[0].numpy(), np.stack([case["vx"], case["vy"]]))

    def test_torch_solver_stays_close_to_the_original(self):
        """The portable solver's schedule differs (checkerboard updates): energies within 1% at every level."""
        case = _load_flow_case("sinewarp_coffee_120x160")
        _, levels = SIFTFlow(solver="torch").match(_sift(case, "sift1"), _sift(case, "sift2"))
        for index, level in enumerate(levels):
            original = case[f"L{index + 1}_energy"][-1]
            assert abs(level["energy"][-1, 0].item() / original - 1) < 0.01, index

    @pytest.mark.parametrize(
        ("channels", "height", "width"),
        [(16, 9, 13), (37, 20, 40), (128, 18, 70)],
        ids=["16 bytes", "odd length, 2 tiles", "128-D, 3 tiles, 2 bands"],
    )
    def test_compiled_and_torch_data_terms_are_equal(self, channels, height, width):
        """Costs of every label, the histogram-median default for matches outside image 2 included;
        descriptor lengths that fill vector registers or not, and more than one tile of steps."""
        from siftflow_nn._native import kernels

        generator = torch.Generator().manual_seed(1)
        shape = (2, 1, channels, height, width)
        sift1, sift2 = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        offset = torch.randint(-4, 5, (1, 2, height, width), generator=generator, dtype=torch.int32)
        window = 2
        expected = data_term(sift1.float(), sift2.float(), offset[:, 0].float(), offset[:, 1].float(), window)
        hwc = [np.ascontiguousarray(sift[0].permute(1, 2, 0).numpy()) for sift in (sift1, sift2)]
        ours = kernels.data_term(hwc[0], hwc[1], np.ascontiguousarray(offset[0].numpy()), window, 2)
        ours = ours.reshape(height, width, 5, 5)
        np.testing.assert_array_equal(ours, expected[0].numpy().astype(np.int32))

    def test_compiled_pyramid_equals_the_torch_pyramid_bit_for_bit(self):
        sift = torch.randint(0, 256, (1, 24, 37, 51), dtype=torch.uint8)
        sift[..., :10, :10] = 200  # a flat patch: where a different rounding would show after truncation
        reference = descriptor_pyramid(sift, 4)
        compiled = descriptor_pyramid_hwc(np.ascontiguousarray(sift[0].permute(1, 2, 0).numpy()), 4)
        assert [level.shape[-2:] for level in reference] == [(37, 51), (19, 26), (10, 13), (5, 7)]
        for ours, theirs in zip(compiled, reference):
            np.testing.assert_array_equal(ours, theirs[0].permute(1, 2, 0).numpy())

    def test_compiled_pyramid_is_exact_for_every_byte_in_full_chunks(self):
        """128 channels (full chunks of 32, the vector path) and flat patches holding every byte
        value: inside a flat patch a level is v / 255 times weights summing to 1, truncated after
        * 255, so an ulp off in the division (im2double) or in a sum shows as a byte off."""
        generator = torch.Generator().manual_seed(3)
        sift = torch.randint(0, 256, (1, 128, 56, 90), generator=generator, dtype=torch.uint8)
        channel = torch.arange(128).view(128, 1, 1)
        for patch in range(4):  # 24 x 24 patches, wider than a level's taps: channel c holds c + 64 patch
            sift[0, :, 4:28, 4 + 22 * patch : 28 + 22 * patch] = (channel + 64 * patch) % 256
        reference = descriptor_pyramid(sift, 3)
        compiled = descriptor_pyramid_hwc(np.ascontiguousarray(sift[0].permute(1, 2, 0).numpy()), 3)
        for ours, theirs in zip(compiled, reference):
            np.testing.assert_array_equal(ours, theirs[0].permute(1, 2, 0).numpy())

    @pytest.mark.parametrize("length", [*range(1, 40), 109, 436, 1023, 1024])
    def test_reduction_tables_compose_filter_and_resize_in_order(self, length):
        """The vectorised table of one pyramid step equals its definition bit for bit: per output
        sample, each (resize tap, Gaussian tap) product added in that order to its clamped source."""
        from siftflow_nn import matlab
        from siftflow_nn.flow.pyramid import _GAUSSIAN_TAPS, reduction_weights

        resize_indices, resize_weights = matlab.resize_weights(length, math.ceil(length / 2), 0.5)
        expected = []
        for indices, weights in zip(resize_indices.tolist(), resize_weights.tolist()):
            combined: dict[int, float] = {}
            for index, weight in zip(indices, weights):
                for offset, tap in enumerate(_GAUSSIAN_TAPS.tolist()):
                    source = min(max(index + offset - 2, 0), length - 1)
                    combined[source] = combined.get(source, 0.0) + weight * tap
            expected.append(sorted(combined.items()))
        indices, weights = reduction_weights(length)
        assert indices.shape == (math.ceil(length / 2), max(len(row) for row in expected))
        for row, (out_indices, out_weights) in enumerate(zip(indices.tolist(), weights.tolist())):
            taps = len(expected[row])
            assert out_indices[:taps] == [source for source, _ in expected[row]]
            assert out_weights[:taps] == [weight for _, weight in expected[row]]  # == on floats: bit for bit
            assert set(out_weights[taps:]) <= {0.0} and set(out_indices[taps:]) <= {0}
        assert not weights.flags.writeable  # cached per length: nobody may change them

    def test_pyramid_truncates_and_wraps_like_the_mex(self):
        """(unsigned char)(v * 255) on x86: truncation toward zero, then the low byte (-1 -> 255)."""
        values = torch.tensor([0.0, 0.999 / 255, 1 / 255, 254.9 / 255, 255.5 / 255, -0.5 / 255, -1.5 / 255])
        assert _wrap_to_uint8(values.double()).tolist() == [0, 0, 1, 254, 255, 0, 255]

    def test_compiled_result_does_not_depend_on_the_thread_count(self):
        """The wavefront runs blocks in parallel only where the original's order allows: same bits."""
        image1, image2, _ = synthetic_pair(80, 300, max_displacement=3.0, seed=9, noise=0.05)  # 3 x 3 blocks
        matcher = SIFTFlow(num_levels=2, iterations=12, top_iterations=12)
        before = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one, levels_one = matcher.match(*_descriptors_u8(image1, image2))
            torch.set_num_threads(2)
            two, levels_two = matcher.match(*_descriptors_u8(image1, image2))
        finally:
            torch.set_num_threads(before)
        assert torch.equal(one, two)
        assert torch.equal(levels_one[0]["energy"], levels_two[0]["energy"])
        assert torch.get_num_threads() == before  # the kernels' OpenMP teams must not leak into torch's count

    def test_compiled_and_torch_solvers_agree_on_a_synthetic_pair(self):
        image1, image2, truth = synthetic_pair(72, 96, max_displacement=3.0, seed=10, noise=0.03)
        compiled = SIFTFlow(solver="compiled")(image1[None], image2[None])[0]
        portable = SIFTFlow(solver="torch")(image1[None], image2[None])[0]
        assert abs(self.epe(compiled, truth) - self.epe(portable, truth)) < 0.1
        assert (compiled == portable).all(0).float().mean() > 0.9

    def test_without_the_kernels_the_torch_solver_runs_with_a_warning(self, monkeypatch):
        import siftflow_nn.flow.sift_flow as module

        monkeypatch.setattr(module.compiled, "AVAILABLE", False)
        monkeypatch.setattr(
            module._native, "MISSING", "the compiled kernels (siftflow_nn._kernels) could not be loaded"
        )
        image1, image2, truth = translated_pair(40, 48, dx=1, dy=2)
        with pytest.warns(RuntimeWarning, match="falls back to its portable torch solver.*could not be loaded"):
            flow = SIFTFlow(num_levels=2, iterations=8, top_iterations=8)(image1[None], image2[None])
        assert self.epe(flow[0], truth) == 0
        with pytest.raises(ImportError, match="C\\+\\+ compiler"):
            SIFTFlow(solver="compiled")(image1[None], image2[None])

    def test_level_plans_follow_the_original_schedule(self):
        """SIFTflowc2f.m (2009): hierarchy nlevels - i below the top, 2 at the top; iterations from linspace."""
        plans = SIFTFlow().level_plans()
        assert [plan.hierarchy for plan in plans] == [3, 2, 1, 2]
        assert [plan.iterations for plan in plans] == [30, 26, 22, 60]
        assert [plan.window for plan in plans] == [2, 2, 2, 10]
        assert [plan.gamma for plan in plans] == pytest.approx([1.275, 2.55, 5.1, 10.2])
        assert [plan.iterations for plan in SIFTFlow(fast=True).level_plans()] == [10, 8, 7, 20]

    @pytest.mark.parametrize("solver", ["compiled", "torch"])
    def test_energies_recorded_or_not_the_flow_is_the_same(self, solver):
        """Without energies, the labels of the iterations nobody scores are not computed: the
        flow of every level stays; "last" is every's last row. 13 iterations: the last one sends
        no dual messages, so the other layer's labels are only right if computed afresh."""
        image1, image2, _ = synthetic_pair(40, 56, max_displacement=2.0, seed=12, noise=0.05)
        matcher = SIFTFlow(num_levels=2, iterations=13, top_iterations=13, solver=solver)
        sifts = _descriptors_u8(image1, image2)
        flow, every = matcher.match(*sifts)
        for record in ("last", "none"):
            other_flow, levels = matcher.match(*sifts, energies=record)
            assert torch.equal(other_flow, flow)
            for level, reference in zip(levels, every):
                assert torch.equal(level["flow"], reference["flow"])
                if record == "last":
                    assert torch.equal(level["energy"], reference["energy"][-1:])
                else:
                    assert "energy" not in level
        with pytest.raises(ValueError, match="energies must be one of 'every', 'last', 'none', got 'all'"):
            matcher.match(*sifts, energies="all")

    def test_match_reports_each_level_as_it_ends(self):
        image1, image2, _ = translated_pair(40, 48, dx=1, dy=0)
        seen = []
        SIFTFlow(num_levels=3, iterations=4, top_iterations=4).match(
            *_descriptors_u8(image1, image2),
            on_level=lambda index, level: seen.append((index, tuple(level["flow"].shape))),
        )
        assert seen == [(2, (1, 2, 10, 12)), (1, (1, 2, 20, 24)), (0, (1, 2, 40, 48))]

    @pytest.mark.parametrize(
        ("options", "error", "message"),
        [
            (dict(fast="no"), TypeError, "fast must be a bool, got str 'no'"),
            (dict(alpha="x"), TypeError, "alpha must be a non-negative number, got str 'x'"),
            (dict(d=-1), ValueError, "d must be a non-negative finite number, got -1"),
            (dict(solver="fastest"), ValueError, "solver must be one of 'auto', 'compiled', 'torch'"),
        ],
    )
    def test_bad_options_get_a_clear_error(self, options, error, message):
        with pytest.raises(error, match=message):
            SIFTFlow(**options)


class TestMatchInputs(BaseTester):
    """``match`` on descriptors as users hold them: the stored bytes whatever the layout and dtype."""

    @pytest.mark.parametrize("solver", ["compiled", "torch"])
    def test_every_layout_and_dtype_gives_the_uint8_flow(self, solver):
        image1, image2, _ = synthetic_pair(40, 52, max_displacement=2.0, seed=3)
        d1, d2 = BaseTester.descriptor_pair(image1, image2)
        d1, d2 = d1 * 255, d2 * 255  # float, B x 128 x H x W: what SIFTFlowDescriptor returns, on the 0..255 scale
        d1[0, :, 5, 7] = 300.0  # beyond the range: clamped as the mex reads it
        d1[0, :3, 9, 9] = -2.5
        matcher = SIFTFlow(num_levels=2, iterations=6, top_iterations=6, solver=solver)
        reference = matcher.match(d1.clamp(0, 255).to(torch.uint8), d2.clamp(0, 255).to(torch.uint8))[0]
        channels_last = torch.channels_last
        for a, b in [
            (d1, d2),
            (d1.double(), d2.double()),
            (d1.contiguous(memory_format=channels_last), d2.contiguous(memory_format=channels_last)),
            (d1.clamp(0, 255).to(torch.uint8).contiguous(memory_format=channels_last), d2.clamp(0, 255).byte()),
        ]:
            assert torch.equal(matcher.match(a, b)[0], reference)
        for low in (torch.float16, torch.bfloat16):  # autocast's descriptors: read as their float32 values
            a, b = d1.to(low), d2.to(low)
            assert torch.equal(matcher.match(a, b)[0], matcher.match(a.float(), b.float())[0])

    @pytest.mark.parametrize("solver", ["compiled", "torch"])
    def test_nan_is_named_not_silent(self, solver):
        image1, image2, _ = synthetic_pair(40, 52, max_displacement=2.0, seed=3)
        image1 = image1.clone()
        image1[:, 10:14, 10:14] = float("nan")
        matcher = SIFTFlow(num_levels=2, iterations=4, top_iterations=4, solver=solver)
        with pytest.warns(RuntimeWarning, match="image1 has 48 NaN values"):
            matcher(image1[None], image2[None])
        d1, d2 = BaseTester.descriptor_pair(image1, image2)
        with pytest.warns(RuntimeWarning, match="sift1 holds .* NaN descriptor values"):
            matcher.match(d1 * 255, d2 * 255)

    def test_empty_and_meta_batches_are_named(self):
        matcher = SIFTFlow(num_levels=2)
        empty = torch.zeros(0, 128, 20, 20, dtype=torch.uint8)
        with pytest.raises(ValueError, match="at least one descriptor image"):
            matcher.match(empty, empty)
        meta = torch.zeros(1, 128, 20, 20, device="meta")
        with pytest.raises(ValueError, match="meta device"):
            matcher.match(meta, meta)

    @pytest.mark.parametrize("solver", ["compiled", "torch"])
    def test_descriptors_on_the_unit_scale_are_named(self, solver):
        """SIFTFlowDescriptor's own output is on [0, 1]; read on the 0..255 scale it is all zeros."""
        image1, image2, _ = synthetic_pair(40, 52, max_displacement=2.0, seed=3)
        d1, d2 = BaseTester.descriptor_pair(image1, image2)
        with pytest.warns(RuntimeWarning) as warned:
            SIFTFlow(num_levels=2, iterations=2, top_iterations=2, solver=solver).match(d1, d2)
        messages = [str(warning.message) for warning in warned]
        for name in ("sift1", "sift2"):
            assert any(message.startswith(f"{name} looks like descriptors on the [0, 1] scale") for message in messages)


@pytest.mark.parametrize("channels", [128, 40, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
@pytest.mark.parametrize("layout", ["chw", "hwc", "strided"])
def test_stored_hwc_is_the_mex_s_reading_in_any_layout(channels, dtype, layout):
    """The one-pass conversion (tiles of 32 pixels, 16 x 16 byte transposes, tails one by one) gives
    the bytes of the definition: truncated, clamped to 0..255, NaN as 0, channels last."""
    from siftflow_nn.flow.compiled import stored_hwc

    values = torch.rand(channels, 5, 75, dtype=torch.float64) * 300 - 20
    if dtype == torch.uint8:
        values = values.clamp(0, 255)
    sift = values.to(dtype)
    if dtype != torch.uint8:
        sift[3, 2, 40] = float("nan")
    expected = torch.nan_to_num(sift.double(), nan=0.0).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    if layout == "hwc":
        sift = sift.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    elif layout == "strided":
        wide = torch.zeros(channels, 5, 150, dtype=dtype)
        wide[:, :, ::2] = sift
        sift = wide[:, :, ::2]  # x two values apart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the NaN is named; here only the bytes matter
        stored = torch.from_numpy(stored_hwc(sift, "sift1"))
    assert torch.equal(stored, expected)
