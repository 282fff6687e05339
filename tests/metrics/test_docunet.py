"""The DocUNet metrics: every stage against the original scripts' own run
(tests/data/reference/docunet: eval.m / evalUnwarp.m with MATLAB's functions), the whole pipeline
against the shared benchmark's references (tests/data/docunet_bench), then the API."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from siftflow_nn import matlab
from siftflow_nn.io import ImageReadError
from siftflow_nn.metrics import docunet
from siftflow_nn.synthetic import document_pair
from tests.base import BaseTester
from tests.conftest import DATA, REFERENCE

CASES = ["identical_gray_600x450", "warp8_rgb_600x450"]


def _load(name: str) -> dict[str, np.ndarray]:
    with np.load(REFERENCE / "docunet" / f"{name}.npz") as archive:
        return {key: archive[key] for key in archive.files}


def _decoded(case: dict[str, np.ndarray], key: str) -> torch.Tensor:
    """The PNG's pixels as imread gives them, ``(C, H, W)`` uint8."""
    array = np.array(Image.open(io.BytesIO(case[key].tobytes())))
    return torch.from_numpy(array).permute(2, 0, 1) if array.ndim == 3 else torch.from_numpy(array)[None]


@pytest.fixture(scope="module", params=CASES)
def case(request):
    case = _load(request.param)
    case["rec"], case["scan"] = _decoded(case, "rec_png"), _decoded(case, "scan_png")
    return case


def _equal(actual: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(actual.squeeze().numpy(), expected)


class TestStagesAgainstTheOriginalScripts(BaseTester):
    def test_rgb2gray(self, case):
        for key in ("rec", "scan"):
            image = case[key]
            _equal(matlab.rgb2gray(image) if image.shape[0] == 3 else image, case[f"mat_{key}_gray"])

    def test_area_resize(self, case):
        unwarped, scan = docunet.benchmark_pair(case["rec"], case["scan"])
        _equal(scan, case["mat_scan_gray_resized"])
        _equal(unwarped, case["mat_rec_gray_resized"])

    def test_blurred_halves(self, case):
        scan = torch.from_numpy(case["mat_scan_gray_resized"])[None, None]
        unwarped = torch.from_numpy(case["mat_rec_gray_resized"])[None, None]
        _equal(docunet._halves(scan), case["mat_im1_u8"])
        _equal(docunet._halves(unwarped), case["mat_im2_u8"])

    def test_ssim_at_each_scale_and_ms_ssim(self, case):
        x = torch.from_numpy(case["mat_rec_gray_resized"])
        y = torch.from_numpy(case["mat_scan_gray_resized"])
        for scale in range(5):
            assert abs(float(matlab.ssim(x, y)) - case["mat_ss"][scale]) < 1e-12, scale
            x, y = matlab.impyramid_reduce(x), matlab.impyramid_reduce(y)
        ms = docunet.ms_ssim_docunet(case["rec"], case["scan"])
        assert abs(float(ms) - case["mat_ms"]) < 1e-12

    @pytest.mark.parametrize("schedule", ["2010", "2009"])
    def test_flow_equals_the_original(self, case, schedule):
        """The release's descriptor and driver (2010, what the scripts call; 2009 checked too)."""
        scan = torch.from_numpy(case["mat_scan_gray_resized"])[None, None]
        unwarped = torch.from_numpy(case["mat_rec_gray_resized"])[None, None]
        flow = docunet._flow(unwarped, scan, schedule)
        tag = "mat10" if schedule == "2010" else "mat09"
        _equal(flow[0, 0], case[f"{tag}_vx"].astype(np.float32))
        _equal(flow[0, 1], case[f"{tag}_vy"].astype(np.float32))

    def test_ld_and_li_d_of_the_original_flow(self, case):
        flow = torch.from_numpy(np.stack([case["mat10_vx"], case["mat10_vy"]]).astype(np.float64))[None]
        assert float(docunet._mean_length(flow)) == pytest.approx(float(case["mat10_ld"]), rel=1e-12, abs=1e-12)
        assert float(docunet._line_spread(flow)) == pytest.approx(float(case["mat10_li_d"]), rel=1e-12, abs=1e-12)

    def test_all_four_from_the_files(self, case, tmp_path):
        paths = []
        for key in ("rec_png", "scan_png"):
            paths.append(tmp_path / f"{key}.png")
            paths[-1].write_bytes(case[key].tobytes())
        scores = docunet.docunet_metrics(*paths)
        assert float(scores.ms_ssim) == pytest.approx(float(case["mat_ms"]), abs=1e-12)
        assert float(scores.local_distortion) == pytest.approx(float(case["mat10_ld"]), rel=1e-9, abs=1e-12)
        assert float(scores.line_distortion) == pytest.approx(float(case["mat10_li_d"]), rel=1e-9, abs=1e-12)
        # the flow is MATLAB's: AD as test_aligned_distortion has it (0.5% on the identical pair's 9.0e-6)
        rel = 0.01 if float(case["mat10_ld"]) == 0 else 5e-5
        assert float(scores.aligned_distortion) == pytest.approx(float(case["mat10_ad"]), rel=rel)


BENCH = DATA / "docunet_bench"


@pytest.fixture(scope="module")
def bench():
    """The shared 4-pair benchmark scored once, as a list of files, and its references."""
    pairs = json.loads((BENCH / "refs.json").read_text())["pairs"]
    evaluation = docunet.docunet_evaluation(
        [BENCH / "rec" / pair["rec"] for pair in pairs], [BENCH / "scan" / pair["scan"] for pair in pairs]
    )
    return evaluation, pairs


class TestTheBenchmarkPages(BaseTester):
    """Two pages (RGB and gray scans) with two unwarped results each, scored by eval.m,
    evalUnwarp.m and evalAlignedUnwarp.m in Octave with MATLAB's functions."""

    def test_ms_ssim_ld_and_li_d(self, bench):
        evaluation, pairs = bench
        for index, pair in enumerate(pairs):
            assert float(evaluation.scores.ms_ssim[index]) == pytest.approx(pair["ms_ssim"], abs=1e-9)
            assert float(evaluation.scores.local_distortion[index]) == pytest.approx(pair["ld"], rel=1e-9)
            assert float(evaluation.scores.line_distortion[index]) == pytest.approx(pair["li_d"], rel=1e-9)

    def test_ad(self, bench):
        """Within 1% always; where our flow is MATLAB's (LD equal), equal but for MATLAB's single sum."""
        evaluation, pairs = bench
        for index, pair in enumerate(pairs):
            ad = float(evaluation.scores.aligned_distortion[index])
            same_flow = float(evaluation.scores.local_distortion[index]) == pytest.approx(pair["ld"], rel=1e-9)
            assert ad == pytest.approx(pair["ad"], rel=1e-4 if same_flow else 0.01), pair["rec"]

    def test_the_flows_and_scans_that_were_scored(self, bench):
        evaluation, pairs = bench
        assert len(evaluation.flow) == len(evaluation.scan) == len(pairs)
        for flow, scan in zip(evaluation.flow, evaluation.scan):
            assert scan.dtype == torch.uint8 and scan.shape[:2] == (1, 1)
            assert abs(scan.shape[-2] * scan.shape[-1] - docunet.TARGET_AREA) < sum(scan.shape[-2:])
            assert flow.shape == (1, 2, *[(length + 1) // 2 for length in scan.shape[-2:]])
        assert torch.equal(evaluation.scan[0], evaluation.scan[1])  # pairs 1_1 and 1_2 share scan 1


def _page_pair(displacement: float, seed: int = 0, size=(72, 54)) -> tuple[torch.Tensor, torch.Tensor]:
    photo, scan, _ = document_pair(*size, max_displacement=displacement, seed=seed)
    return photo, scan


class TestDocUNetMetrics(BaseTester):
    def test_scores_grow_with_the_distortion(self):
        _, scan = _page_pair(1.0)
        same = docunet.docunet_metrics(scan, scan)
        # not quite 1: the scan is resized by b, the photo to that size (a slightly different scale
        # per axis), as in eval.m: the identical reference pair scores 0.99136 with MATLAB too
        assert 0.99 < float(same.ms_ssim) < 1 and float(same.local_distortion) == float(same.line_distortion) == 0
        small = docunet.docunet_metrics(*_page_pair(1.0))
        large = docunet.docunet_metrics(*_page_pair(4.0))
        assert 0 < small.local_distortion < large.local_distortion
        assert 0 < small.line_distortion < large.line_distortion
        assert 1 > small.ms_ssim > large.ms_ssim

    def test_the_single_metrics_agree_with_docunet_metrics(self):
        photo, scan = _page_pair(3.0, seed=2)
        evaluation = docunet.docunet_evaluation(photo, scan)
        scores = docunet.docunet_metrics(photo, scan)
        assert all(torch.equal(ours, theirs) for ours, theirs in zip(scores, evaluation.scores))
        assert torch.equal(docunet.local_distortion(photo, scan), scores.local_distortion)
        assert torch.equal(docunet.line_distortion(photo, scan), scores.line_distortion)
        assert torch.equal(docunet.ms_ssim_docunet(photo, scan), scores.ms_ssim)
        assert torch.equal(docunet.aligned_distortion(photo, scan), scores.aligned_distortion)
        assert 0 < float(scores.aligned_distortion) < float(scores.local_distortion)
        flow = docunet.docunet_flow(photo, scan)
        assert torch.equal(flow, evaluation.flow)
        assert torch.equal(evaluation.scan, docunet.benchmark_pair(photo, scan)[1])
        assert flow.shape == (1, 2, *[(length + 1) // 2 for length in evaluation.scan.shape[-2:]])

    def test_a_batch_of_float_tensors_equals_a_list_of_uint8_files(self, tmp_path):
        pairs = [_page_pair(2.0, seed=seed) for seed in (3, 4)]
        photos, scans = torch.stack([photo for photo, _ in pairs]), torch.stack([scan for _, scan in pairs])
        batched = docunet.docunet_metrics(photos, scans)
        paths = {}
        for index, (photo, scan) in enumerate(pairs):
            for name, image in (("photo", photo), ("scan", scan)):
                paths.setdefault(name, []).append(tmp_path / f"{name}{index}.png")
                Image.fromarray(matlab.im2uint8(image)[0].numpy()).save(paths[name][-1])
        from_files = docunet.docunet_metrics(paths["photo"], paths["scan"])
        assert batched.local_distortion.shape == (2,)
        for ours, theirs in zip(batched, from_files):
            assert torch.equal(ours, theirs)
        assert not torch.equal(batched.local_distortion[0], batched.local_distortion[1])

    def test_on_the_device(self, device):
        """On a GPU the matcher is the torch solver: LD and Li-D within 2% of the CPU's."""
        photo, scan = _page_pair(3.0, seed=7)
        on_cpu = docunet.docunet_metrics(photo, scan)
        here = docunet.docunet_metrics(photo.to(device), scan.to(device))
        assert all(value.device.type == device.type for value in here)
        assert abs(float(here.ms_ssim) - float(on_cpu.ms_ssim)) < 1e-9
        for ours, reference in zip(here[1:], on_cpu[1:]):
            assert float(ours) == pytest.approx(float(reference), rel=0.02 if device.type == "cuda" else 0)

    def test_rgb_photos_are_scored_in_gray(self):
        photo, scan = _page_pair(2.0, seed=5)
        rgb = photo.expand(3, -1, -1)
        assert torch.equal(docunet.docunet_metrics(rgb, scan).ms_ssim, docunet.docunet_metrics(photo, scan).ms_ssim)

    def test_the_unwarped_photo_may_have_another_size(self):
        photo, scan = _page_pair(2.0, seed=6)
        larger = torch.nn.functional.interpolate(photo[None], scale_factor=1.5, mode="bilinear")[0].clamp(0, 1)
        scores = docunet.docunet_metrics(larger, scan)
        assert 0.3 < float(scores.ms_ssim) < 1 and float(scores.local_distortion) < 10

    @pytest.mark.parametrize(
        "unwarped, scan, error, message",
        [
            (torch.zeros(4, 30, 30), torch.zeros(1, 30, 30), ValueError, "unwarped must have 1 .* or 3 .*, got 4"),
            (torch.zeros(1, 0, 30), torch.zeros(1, 30, 30), ValueError, "unwarped is empty"),
            (torch.zeros(1, 30, 30), torch.full((1, 30, 30), 2.0), ValueError, r"scan: floating-point .* in \[0, 1\]"),
            (torch.zeros(1, 30, 30), torch.full((1, 30, 30), float("nan")), ValueError, "NaN"),
            (torch.zeros(30, 30), torch.zeros(1, 30, 30), ValueError, r"unwarped must be a path or a \(B, C, H, W\)"),
            (torch.zeros(2, 1, 30, 30), torch.zeros(3, 1, 30, 30), ValueError, "as many images, got 2 and 3"),
            (torch.zeros(1, 30, 30, dtype=torch.int64), torch.zeros(1, 30, 30), TypeError,
             "uint8, uint16 or floating point"),
            (torch.zeros(1, 30, 30, dtype=torch.uint16), torch.zeros(1, 30, 30), ValueError,
             "of one class, got torch.uint16 and torch.uint8"),
            (torch.zeros(1, 30, 30, device="meta"), torch.zeros(1, 30, 30), ValueError, "unwarped is on the meta"),
            (torch.zeros(1, 30, 30), torch.zeros(1, 30, 30, dtype=torch.uint8, device="meta"), ValueError,
             "scan is on the meta"),
            (np.zeros((2, 30, 30, 1)), torch.zeros(1, 30, 30), ValueError, r"\(H, W\) or \(H, W, C\), as imread"),
            (np.zeros((30, 30, 4), np.uint8), torch.zeros(1, 30, 30), ValueError, "1 .* or 3 .*, got 4"),
            ([torch.zeros(1, 30, 30)], [], ValueError, r"scan must be a list as long as unwarped \(1\), got 0"),
            (torch.zeros(1, 30, 30), torch.zeros(1, 30000, 10), ValueError, "too narrow for SIFT flow"),
        ],
    )  # fmt: skip
    def test_bad_input(self, unwarped, scan, error, message):
        with pytest.raises(error, match=message):
            docunet.docunet_metrics(unwarped, scan)

    @pytest.mark.parametrize(
        "function",
        [docunet.docunet_metrics, docunet.docunet_evaluation, docunet.ms_ssim_docunet, docunet.local_distortion,
         docunet.line_distortion, docunet.aligned_distortion, docunet.docunet_flow],
    )  # fmt: skip
    def test_empty_lists_are_refused(self, function):
        with pytest.raises(ValueError, match="unwarped is an empty list: give at least one image"):
            function([], [])

    def test_files_that_are_not_images_are_named(self, tmp_path):
        (tmp_path / "notes.png").write_text("not an image")
        photo, scan = _page_pair(1.0)
        with pytest.raises(ImageReadError, match="notes.png: not a readable image"):
            docunet.docunet_metrics(tmp_path / "notes.png", scan)
        with pytest.raises(ImageReadError, match="missing.png: no such file"):
            docunet.docunet_metrics(photo, tmp_path / "missing.png")


@pytest.fixture(scope="module")
def pages():
    """A page pair as 8 bits, and the same pair saved at 16 bits (its values times 257)."""
    photo, scan = _page_pair(3.0, seed=9)
    eight = (matlab.im2uint8(photo), matlab.im2uint8(scan))
    return eight, tuple((image.int() * 257).to(torch.uint16) for image in eight)


class TestSixteenBitImages(BaseTester):
    """MATLAB's imread gives uint16 for a 16-bit PNG and eval.m computes in that class: every stage
    rounds to 0..65535 (tests/matlab check each against its float64 definition so rounded), SSIM's
    range is 65535, the descriptor reads im2double's / 65535."""

    def test_every_stage_stays_in_uint16(self, pages):
        eight, sixteen = pages
        unwarped, scan = docunet.benchmark_pair(*sixteen)
        assert unwarped.dtype == scan.dtype == torch.uint16
        as_eight = docunet.benchmark_pair(*eight)[0].int() * 257
        difference = (unwarped.int() - as_eight).abs()
        # rounded to 1/65535, not to 1/255: not the 8-bit values scaled, but within their rounding
        # (two passes, the second's taps summing to about 1.2 in absolute value)
        assert int(difference.max()) <= 2 * 257 and bool((difference % 257 != 0).any())
        half = docunet._halves(scan)
        assert half.dtype == torch.uint16
        assert torch.equal(half, matlab.imresize(matlab.gaussian_filter(scan, 7, 1.0), 0.5))

    def test_the_descriptor_reads_im2double(self, pages):
        """257 v / 65535 is v / 255: the 16-bit copy of an 8-bit half gives its very descriptor."""
        half = docunet._halves(docunet.benchmark_pair(*pages[0])[1])
        sixteen = (half.int() * 257).to(torch.uint16)
        assert torch.equal(docunet._release_descriptor(sixteen), docunet._release_descriptor(half))

    def test_scores_follow_the_16_bit_arithmetic(self, pages):
        eight, sixteen = pages
        at_8, at_16 = docunet.docunet_metrics(*eight), docunet.docunet_metrics(*sixteen)
        # MS-SSIM from the 16-bit stages: close to the 8-bit value, not equal to it
        assert 0 < abs(float(at_16.ms_ssim) - float(at_8.ms_ssim)) < 2e-3
        for ours, theirs in zip(at_16[1:], at_8[1:]):
            assert float(ours) == pytest.approx(float(theirs), rel=0.1)

    def test_numpy_arrays_in_imreads_layout(self, pages):
        _, (photo, scan) = pages
        rgb = photo.expand(3, -1, -1)
        from_arrays = docunet.benchmark_pair(rgb.permute(1, 2, 0).numpy(), scan[0].numpy())
        for ours, theirs in zip(from_arrays, docunet.benchmark_pair(rgb, scan)):
            assert torch.equal(ours, theirs)
