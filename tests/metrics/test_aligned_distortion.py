"""Aligned Distortion against PaperEdge's / UVDoc's evalAlignedUnwarp.m + alignLD.m, run on the
reference pairs' resized scan and MATLAB's flow (tests/data/reference/docunet: mat10_ad, mat10_ad_T,
mat10_ad_mask_count), so that only AD's own stages are under test; then its properties."""

import numpy as np
import pytest
import torch

from siftflow_nn import matlab
from siftflow_nn.metrics.aligned_distortion import align_flow, aligned_distortion_of_flow, gradient_weights
from tests.base import BaseTester
from tests.conftest import REFERENCE

CASES = ["identical_gray_600x450", "warp8_rgb_600x450"]


def _load(name: str) -> dict:
    with np.load(REFERENCE / "docunet" / f"{name}.npz") as archive:
        case = {key: archive[key] for key in archive.files}
    case["name"] = name
    case["scan"] = torch.from_numpy(case["mat_scan_gray_resized"])[None, None]
    case["flow"] = torch.from_numpy(np.stack([case["mat10_vx"], case["mat10_vy"]]).astype(np.float32))[None]
    return case


@pytest.fixture(scope="module", params=CASES)
def case(request):
    return _load(request.param)


def _system(flow: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alignLD's A and B, written out again: [x + vx, 0, 1, 0] and [0, y + vy, 0, 1] per pixel."""
    rows, columns = mask.nonzero().unbind(1)
    x, y = columns.double() + 1, rows.double() + 1
    A = torch.zeros(2 * len(x), 4, dtype=torch.float64)
    A[0::2, 0], A[1::2, 1], A[0::2, 2], A[1::2, 3] = x + flow[0, rows, columns], y + flow[1, rows, columns], 1, 1
    return A, torch.stack([x, y], dim=1).flatten()


class TestAgainstTheOriginalScripts(BaseTester):
    def test_the_edge_mask(self, case):
        weights = gradient_weights(case["scan"], case["flow"].shape[-2:])
        assert weights.dtype == torch.float32 and weights.shape == (1, 1, 447, 335)
        assert int((weights > 0.5).sum()) == int(case["mat10_ad_mask_count"])

    def test_the_fit(self, case):
        """MATLAB's T: scales T(1, 1), T(2, 2), shifts T(3, 1), T(3, 2). Four LSQR steps amplify
        rounding (the order of a sum moves the scales by ~1e-9): agreement to that, not to 1e-15."""
        fit = align_flow(case["flow"], gradient_weights(case["scan"], case["flow"].shape[-2:]))
        T = case["mat10_ad_T"]
        assert int(fit.pixels) == int(case["mat10_ad_mask_count"])
        self.assert_close(fit.scale[0], torch.tensor([T[0, 0], T[1, 1]]), rtol=0, atol=5e-8)
        self.assert_close(fit.shift[0], torch.tensor([T[2, 0], T[2, 1]]), rtol=0, atol=1e-8)

    def test_ad(self, case):
        ad = float(aligned_distortion_of_flow(case["flow"], case["scan"]))
        if case["name"].startswith("identical"):
            # not 0: all of MATLAB's 9.0e-6 is what 4 LSQR steps leave; rounding moves it by 0.5%
            assert ad == pytest.approx(float(case["mat10_ad"]), rel=0.01) and ad > 8e-6
        else:  # MATLAB sums the single lengths in single: 2e-5 relative from our float64 mean
            assert ad == pytest.approx(float(case["mat10_ad"]), rel=5e-5)

    def test_an_identical_pair_is_not_solved_exactly(self):
        """What makes MATLAB's 9.0e-6: an exact least-squares solve maps the identical pair onto
        itself (scale 1 to 1e-10), LSQR's 4 steps with MATLAB's stopping rules stop short."""
        case = _load("identical_gray_600x450")
        weights = gradient_weights(case["scan"], case["flow"].shape[-2:])
        A, b = _system(case["flow"][0].double(), weights[0, 0] > 0.5)
        exact = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
        assert float((exact - torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)).abs().max()) < 1e-10
        result = matlab.lsqr(A, b)
        assert result.flag == 0 and result.iterations == 3  # the check at step 4 stops it
        fit = align_flow(case["flow"], weights)
        assert float((fit.scale - 1).abs().max()) > 1e-7 and float(fit.shift.abs().max()) > 5e-5


class TestAlignedDistortion(BaseTester):
    @staticmethod
    def page() -> torch.Tensor:
        scan = torch.zeros(1, 1, 80, 60, dtype=torch.uint8)
        scan[..., 10:70:8, 6:54] = 255  # lines of "text"
        scan[..., 10:70, 6:8] = 255  # and a margin rule: edges both ways
        return scan

    def test_a_scaled_and_shifted_page_has_no_aligned_distortion(self):
        scan = self.page()
        height, width = 40, 30
        y, x = torch.meshgrid(torch.arange(1.0, height + 1), torch.arange(1.0, width + 1), indexing="ij")
        flow = torch.stack([0.05 * x - 1.5, -0.03 * y + 2.0])[None]  # the photo 5% wider, 3% shorter, moved
        fit = align_flow(flow, gradient_weights(scan, (height, width)))
        self.assert_close(fit.scale[0], torch.tensor([1 / 1.05, 1 / 0.97], dtype=torch.float64), rtol=0, atol=1e-6)
        assert float(aligned_distortion_of_flow(flow, scan)) < 1e-5
        assert float(flow.square().sum(1).sqrt().mean()) > 1  # while LD sees more than a pixel

    def test_a_local_distortion_remains(self):
        scan = self.page()
        flow = torch.zeros(1, 2, 40, 30)
        flow[:, 1, 10:20, 5:25] = 2.0  # a bulge: no scaling and shift explains it
        assert float(aligned_distortion_of_flow(flow, scan)) > 0.01

    def test_batched_equals_one_by_one(self):
        scans = torch.cat([self.page(), self.page().flip(-1)])
        flows = torch.randn(2, 2, 40, 30, generator=torch.Generator().manual_seed(0))
        together = aligned_distortion_of_flow(flows, scans)
        assert together.shape == (2,) and together.dtype == torch.float64
        for index in range(2):
            one = aligned_distortion_of_flow(flows[index : index + 1], scans[index : index + 1])
            self.assert_close(together[index : index + 1], one, rtol=0, atol=1e-15)

    def test_16_bit_scans_weigh_alike(self):
        """imgradient / max: a scan saved at 16 bits (values times 257) has the same weights."""
        scan = self.page()
        flow = torch.randn(1, 2, 40, 30, generator=torch.Generator().manual_seed(1))
        sixteen = (scan.int() * 257).to(torch.uint16)
        self.assert_close(
            aligned_distortion_of_flow(flow, sixteen), aligned_distortion_of_flow(flow, scan), rtol=1e-6, atol=0
        )

    def test_on_the_device(self, device, case):
        here = aligned_distortion_of_flow(case["flow"].to(device), case["scan"].to(device))
        assert here.device.type == device.type
        self.assert_close(here.cpu(), aligned_distortion_of_flow(case["flow"], case["scan"]), rtol=1e-6, atol=0)

    def test_a_uniform_scan_is_refused(self):
        with pytest.raises(ValueError, match="scan 0 of the batch is uniform .* undefined"):
            aligned_distortion_of_flow(torch.zeros(1, 2, 20, 15), torch.full((1, 1, 40, 30), 200, dtype=torch.uint8))

    @pytest.mark.parametrize(
        "flow, scan, error, message",
        [
            (torch.zeros(1, 3, 4, 4), torch.zeros(1, 1, 8, 8), ValueError, r"flow must be a \(B, 2, H, W\)"),
            (torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 8, 8), ValueError, r"scan must be a \(B, 1, H, W\)"),
            (torch.zeros(2, 2, 4, 4), torch.zeros(1, 1, 8, 8), ValueError, "as many images"),
            (torch.zeros(1, 2, 4, 4, dtype=torch.int64), torch.zeros(1, 1, 8, 8), TypeError, "floating point"),
            (torch.full((1, 2, 4, 4), float("nan")), torch.zeros(1, 1, 8, 8), ValueError, "finite"),
            (torch.zeros(1, 2, 0, 4), torch.zeros(1, 1, 8, 8), ValueError, "must hold data"),
            (torch.zeros(1, 2, 4, 4, device="meta"), torch.zeros(1, 1, 8, 8), ValueError, "must hold data"),
        ],
    )  # fmt: skip
    def test_bad_input(self, flow, scan, error, message):
        with pytest.raises(error, match=message):
            aligned_distortion_of_flow(flow, scan)
