"""SIFTflowc2f's two versions (schedule "2009" and "2010") against the SIFT flow release's own run
of both drivers on its descriptors (tests/data/reference/release, see ../README)."""

import numpy as np
import pytest
import torch

from siftflow_nn.flow.pyramid import descriptor_pyramid, descriptor_pyramid_hwc
from siftflow_nn.flow.sift_flow import SIFTFlow
from tests.base import BaseTester
from tests.conftest import REFERENCE

RELEASE_CASES = ["translate_3_m2_astronaut_96x128", "translate_m6_5_camera_112x112", "sinewarp_coffee_120x160"]


def _load(name: str) -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "release" / f"{name}.npz") as archive:
        return {key: archive[key] for key in archive.files}


def _sift(case: dict[str, np.ndarray], key: str) -> torch.Tensor:
    return torch.from_numpy(case[key]).permute(2, 0, 1)[None]


class TestSchedules(BaseTester):
    @pytest.mark.parametrize("schedule", ["2009", "2010"])
    @pytest.mark.parametrize("name", RELEASE_CASES)
    def test_compiled_solver_reproduces_the_release_driver(self, name, schedule):
        """Every iteration's energy at every level, and the final flow, equal the original's."""
        case = _load(name)
        flow, levels = SIFTFlow(schedule=schedule, solver="compiled").match(_sift(case, "sift1"), _sift(case, "sift2"))
        for index, level in enumerate(levels):
            np.testing.assert_array_equal(level["energy"][:, 0].numpy(), case[f"c2f{schedule}_L{index + 1}_energy"])
        expected = np.stack([case[f"c2f{schedule}_vx"], case[f"c2f{schedule}_vy"]])
        np.testing.assert_array_equal(flow[0].numpy(), expected)

    def test_the_two_schedules_differ_on_these_pairs(self):
        """So that the test above tells them apart."""
        case = _load("sinewarp_coffee_120x160")
        assert not np.array_equal(case["c2f2009_L1_energy"][-1], case["c2f2010_L1_energy"][-1])

    def test_torch_solver_stays_close_to_the_2010_driver(self):
        case = _load("sinewarp_coffee_120x160")
        _, levels = SIFTFlow(schedule="2010", solver="torch").match(_sift(case, "sift1"), _sift(case, "sift2"))
        for index, level in enumerate(levels):
            original = case[f"c2f2010_L{index + 1}_energy"][-1]
            assert abs(level["energy"][-1, 0].item() / original - 1) < 0.01, index

    def test_2010_plans(self):
        """Window wsize + i - 1 at level i, nIterations at every level below the top."""
        plans = SIFTFlow(schedule="2010").level_plans()
        assert [plan.window for plan in plans] == [2, 3, 4, 10]
        assert [plan.iterations for plan in plans] == [30, 30, 30, 60]
        assert [plan.hierarchy for plan in plans] == [3, 2, 1, 2]

    def test_2010_pyramid_rounds_to_uint8_after_each_step(self):
        """Compiled and torch pyramids are equal bit for bit, and differ from the 2009 one."""
        sift = torch.randint(0, 256, (1, 24, 37, 51), dtype=torch.uint8)
        sift[:, 0] = 200
        reference = descriptor_pyramid(sift, 4, "2010")
        compiled = descriptor_pyramid_hwc(np.ascontiguousarray(sift[0].permute(1, 2, 0).numpy()), 4, "2010")
        for ours, theirs in zip(compiled, reference):
            np.testing.assert_array_equal(ours, theirs[0].permute(1, 2, 0).numpy())
        assert not torch.equal(reference[1], descriptor_pyramid(sift, 4, "2009")[1])
        assert all(bool((level[:, 0] == 200).all()) for level in reference)  # a flat channel stays exactly flat

    def test_unknown_schedule(self):
        with pytest.raises(ValueError, match="schedule must be one of '2009', '2010', got '2011'"):
            SIFTFlow(schedule="2011")
