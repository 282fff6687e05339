"""The DocUNet figures: the flow over its scan, pixel for pixel, and the summary of every pair's scores."""

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from siftflow_nn.io import OutputError
from siftflow_nn.metrics.figures import flow_figure, summary_figure
from tests.base import BaseTester


def _scan(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A gray ``(1, 1, H, W)`` uint8 scan: paper (200..255) with noise, so that every pixel tells."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(200, 256, (1, 1, height, width), generator=generator, dtype=torch.uint8)


def _still(height: int, width: int) -> torch.Tensor:
    return torch.zeros(1, 2, (height + 1) // 2, (width + 1) // 2)


SCAN, STILL = _scan(60, 40), _still(60, 40)


def _dark(picture: np.ndarray) -> np.ndarray:
    """The arrows' black shafts and heads (the tint and the paper are lighter)."""
    return picture.max(axis=-1) < 90


def _tinted(gray: np.ndarray, fraction: float, weight: float) -> np.ndarray:
    """The gray scan under the colour map's colour at ``fraction``, mixed in by ``weight``."""
    colour = 255 * np.asarray(matplotlib.colormaps["YlOrRd"](fraction)[:3])
    return (1 - weight) * gray[..., None].astype(np.float64) + weight * colour


def _share_within_one(picture: np.ndarray, expected: np.ndarray) -> float:
    """The share of pixels whose every channel is within 1 of the expected colour."""
    return float((np.abs(picture - expected) <= 1).all(axis=-1).mean())


class TestFlowFigure(BaseTester):
    def test_shape_and_dtype_for_every_input_form(self):
        scan, flow = _scan(61, 45), _still(61, 45)
        flow[:, 1] = 3.0
        picture = flow_figure(scan, flow)
        assert picture.shape == (61, 45, 3) and picture.dtype == np.uint8
        for other_scan, other_flow in ((scan[0, 0], flow[0]), (scan[0], flow), (scan, flow.double())):
            np.testing.assert_array_equal(flow_figure(other_scan, other_flow), picture)

    def test_a_16_bit_scan_is_shown_at_8_bits(self):
        scan, flow = _scan(61, 45), _still(61, 45)
        flow[:, 0, :, 10:] = 2.0
        np.testing.assert_array_equal(flow_figure(scan.to(torch.int32).mul(257).to(torch.uint16), flow),
                                      flow_figure(scan, flow))  # fmt: skip

    def test_a_still_flow_shows_the_scan_as_it_is(self):
        scan = _scan(240, 180)
        picture = flow_figure(scan, _still(240, 180))
        gray = scan[0, 0, ..., None].expand(-1, -1, 3).numpy()
        # all but the colour bar's box in the lower right (6 text lines high, over half the width)
        np.testing.assert_array_equal(picture[:170], gray[:170])
        np.testing.assert_array_equal(picture[:, :60], gray[:, :60])

    def test_the_displaced_half_is_tinted_the_still_half_is_not(self):
        """0 in the left half, 5 px in the right: full colour on the right, the scan on the left."""
        height, width = 300, 200
        scan, flow = _scan(height, width), _still(height, width)
        flow[:, 0, :, 50:] = 3.0
        flow[:, 1, :, 50:] = 4.0
        picture = flow_figure(scan, flow)
        gray = scan[0, 0].numpy()
        np.testing.assert_array_equal(picture[:200, :96], np.repeat(gray[:200, :96, None], 3, axis=2))
        expected = _tinted(gray, 1.0, 0.7)
        assert _share_within_one(picture[:200, 100:], expected[:200, 100:]) > 0.75  # the arrows cover the rest
        assert _dark(picture[:200, 100:]).any() and not _dark(picture[:200, :96]).any()  # arrows where it moved

    @pytest.mark.parametrize("axis", [0, 1])
    def test_arrows_point_along_the_flow(self, axis):
        """The head is the wide end: an arrow's black lies further along +x (+y: down) for a flow that way."""
        height, width = 200, 160
        centres = []
        for sign in (1, -1):
            flow = _still(height, width)
            flow[:, axis] = 4.0 * sign
            picture = flow_figure(torch.full((1, 1, height, width), 230, dtype=torch.uint8), flow)[:130].astype(int)
            ink = np.clip(picture[0, 0].max() - picture.max(axis=-1), 0, None)  # the tint is even: the rest is arrows
            positions = np.indices(ink.shape)[1 - axis]
            centres.append((positions * ink).sum() / ink.sum())
        assert centres[0] > centres[1] + 0.5

    def test_max_length_sets_full_colour(self):
        height, width = 200, 160
        scan, flow = _scan(height, width), _still(height, width)
        flow[:, 0] = 5.0
        full, half = flow_figure(scan, flow), flow_figure(scan, flow, max_length=10)
        gray = scan[0, 0].numpy()
        assert _share_within_one(full[:130], _tinted(gray[:130], 1.0, 0.7)) > 0.75
        assert _share_within_one(half[:130], _tinted(gray[:130], 0.5, 0.35)) > 0.75
        np.testing.assert_array_equal(flow_figure(scan, flow, max_length=5), full)  # its 99th percentile

    def test_outliers_do_not_wash_out_the_rest(self):
        """The default full colour is the 99th percentile of the lengths, not the largest."""
        height, width = 200, 160
        scan, flow = _scan(height, width), _still(height, width)
        flow[:, 0] = 4.0
        flow[:, 0, 0, 0] = 400.0  # one outlier in 8000 flow pixels
        np.testing.assert_array_equal(flow_figure(scan, flow)[50:130], flow_figure(scan, flow, max_length=4)[50:130])

    @pytest.mark.parametrize(
        "scan, flow, max_length, error, message",
        [
            (SCAN.float(), STILL, None, TypeError, "scan must be uint8 or uint16, .* got torch.float32"),
            (SCAN.expand(1, 3, -1, -1), STILL, None, ValueError, r"scan must be one gray image, .*\(1, 3, 60, 40\)"),
            (SCAN[0, 0].numpy(), STILL, None, ValueError, "scan must be one gray image, .* got a uint8 array"),
            (SCAN[..., :0], STILL, None, ValueError, r"scan is empty: shape \(1, 1, 60, 0\)"),
            (SCAN.to("meta"), STILL, None, ValueError, "scan is on the meta device"),
            (SCAN, _still(120, 80), None, ValueError, r"60 x 40 scan's flow at half its size, \(2, 30, 20\) .*got"),
            (_scan(61, 41), STILL, None, ValueError, r"\(2, 31, 21\) or \(1, 2, 31, 21\)"),
            (SCAN, STILL.expand(2, -1, -1, -1), None, ValueError, "flow must be the 60 x 40 scan's flow"),
            (SCAN, STILL.int(), None, TypeError, "flow must be a floating-point tensor, got dtype torch.int32"),
            (SCAN, STILL.to("meta"), None, ValueError, "flow is on the meta device"),
            (SCAN, torch.full_like(STILL, float("nan")), None, ValueError, "flow holds NaN or infinite values"),
            (SCAN, STILL, 0, ValueError, "max_length must be positive"),
            (SCAN, STILL, -1.0, ValueError, "max_length must be a non-negative finite number"),
            (SCAN, STILL, float("inf"), ValueError, "max_length must be a non-negative finite number"),
            (SCAN, STILL, "5", TypeError, "max_length must be a non-negative number, got str"),
        ],
    )
    def test_bad_input_is_named(self, scan, flow, max_length, error, message):
        with pytest.raises(error, match=message):
            flow_figure(scan, flow, max_length)


ROWS = [
    {"result": "rec/1_1 copy_rec.png", "scan": "1.png", "ms_ssim": 0.92, "ld": 1.69, "li_d": 0.79, "ad": 0.087,
     "ed": 5, "cer": 0.0044},
    {"result": "rec/1_2 copy_rec.png", "scan": "1.png", "ms_ssim": 0.82, "ld": 2.22, "li_d": 1.22, "ad": 0.176,
     "ed": 127, "cer": 0.1106},
    {"result": "rec/2_1 copy_rec.png", "scan": "2.png", "ms_ssim": 0.88, "ld": 2.03, "li_d": 1.07, "ad": 0.119,
     "ed": None, "cer": None},
    {"result": "rec/2_2 copy_rec.png", "scan": "2.png", "ms_ssim": 0.79, "ld": 2.56, "li_d": 1.46, "ad": 0.202,
     "ed": None, "cer": None},
]  # fmt: skip


@pytest.fixture
def drawn(monkeypatch):
    """The figures ``summary_figure`` saves, kept to look into."""
    saved, save = [], Figure.savefig

    def keep(figure, *args, **kwargs):
        saved.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def _panels(figure: Figure) -> dict:
    return {axes.get_title().split(" ")[0]: axes for axes in figure.axes if axes.get_visible()}


class TestSummaryFigure(BaseTester):
    def test_a_panel_per_metric_sorted_best_to_worst_with_the_mean_and_the_worst_named(self, tmp_path, drawn):
        path = summary_figure(ROWS, tmp_path / "summary.png", worst=2)
        assert path == tmp_path / "summary.png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (1536, 1056)  # 3 rows of 2 panels, 120 dpi
        panels = _panels(drawn[0])
        assert list(panels) == ["MS-SSIM", "LD", "Li-D", "AD", "ED", "CER"]
        assert panels["MS-SSIM"].get_title() == "MS-SSIM (higher is better), 4 pairs"
        assert panels["ED"].get_title() == "ED (lower is better), 2 of 4 pairs"
        heights = {name: [bar.get_height() for bar in axes.patches] for name, axes in panels.items()}
        assert heights["MS-SSIM"] == [0.92, 0.88, 0.82, 0.79] and heights["LD"] == [1.69, 2.03, 2.22, 2.56]
        assert heights["ED"] == [5, 127]
        mean = panels["LD"].get_lines()[0].get_ydata()
        assert mean[0] == pytest.approx((1.69 + 2.22 + 2.03 + 2.56) / 4)
        legend = [text.get_text() for text in panels["LD"].get_legend().get_texts()]
        assert legend == ["mean 2.125", "worst:\n2_2 copy_rec.png  2.56\n1_2 copy_rec.png  2.22"]
        legend = [text.get_text() for text in panels["MS-SSIM"].get_legend().get_texts()]
        assert legend[1] == "worst:\n2_2 copy_rec.png  0.79\n1_2 copy_rec.png  0.82"
        colours = [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in panels["LD"].patches]
        assert colours[:2] != colours[2:] and colours[2] == colours[3]

    def test_scores_as_read_back_from_the_csv(self, tmp_path, drawn):
        rows = [{"result": "a.png", "ld": "1.5", "ad": ""}, {"result": "b.png", "ld": " 2.5 ", "ms_ssim": None}]
        summary_figure(rows, tmp_path / "summary.png")
        (panel,) = _panels(drawn[0]).values()  # no pair has the others: one panel
        assert panel.get_title() == "LD (lower is better), 2 pairs"
        assert [bar.get_height() for bar in panel.patches] == [1.5, 2.5]
        with Image.open(tmp_path / "summary.png") as image:
            assert image.size == (768, 384)

    @pytest.mark.parametrize("name, magic", [("s.pdf", b"%PDF"), ("s.svg", b"<?xml"), ("s", b"\x89PNG")])
    def test_the_format_follows_the_extension(self, tmp_path, name, magic):
        summary_figure(ROWS, tmp_path / name)
        assert (tmp_path / name).read_bytes().startswith(magic)
        assert [path.name for path in tmp_path.iterdir()] == [name]  # no temporary file left

    def test_names_that_are_not_utf8_or_hold_dollars(self, tmp_path, drawn):
        """File names decoded with surrogates (bytes that are not UTF-8) and mathtext's "$" draw as text."""
        rows = [
            {"result": "a$^$b.png", "ld": 3.0},
            {"result": "x\udcffy.png", "ld": 2.0},
            {"result": "\ud800", "ld": 1},
        ]
        summary_figure(rows, tmp_path / "summary.svg")
        (panel,) = _panels(drawn[0]).values()
        worst = panel.get_legend().get_texts()[1].get_text()
        assert worst == "worst:\na\\$^\\$b.png  3\nx\\xffy.png  2\n\\ud800  1"

    def test_a_failed_write_keeps_the_old_file(self, tmp_path, monkeypatch):
        path = tmp_path / "summary.png"
        path.write_bytes(b"old")

        def broken(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(Figure, "savefig", broken)
        with pytest.raises(OSError, match="disk full"):
            summary_figure(ROWS, path)
        assert path.read_bytes() == b"old" and [entry.name for entry in tmp_path.iterdir()] == ["summary.png"]

    @pytest.mark.parametrize(
        "rows, worst, error, message",
        [
            ([], 3, ValueError, "rows is empty"),
            (ROWS[0], 3, TypeError, "rows must be a list of mappings .* got dict"),
            ([ROWS[0], ("a.png", 1.0)], 3, TypeError, r"rows\[1\] must be a mapping .* got tuple"),
            ([{"result": "a.png", "scan": "a.png"}], 3, ValueError, "no row holds a score: .* ld, li_d, ad, ed, cer"),
            ([ROWS[0], {"ld": "1,5"}], 3, ValueError, r"rows\[1\]\['ld'\] must be a number, None or empty, got '1,5'"),
            ([{"ld": float("nan")}], 3, ValueError, r"rows\[0\]\['ld'\] must be a finite number"),
            ([{"cer": True}], 3, TypeError, r"rows\[0\]\['cer'\] must be a number, got bool"),
            (ROWS, -1, ValueError, "worst must be a non-negative int, got -1"),
            (ROWS, 2.5, TypeError, "worst must be a non-negative int, got float"),
        ],
    )
    def test_bad_rows_are_named(self, tmp_path, rows, worst, error, message):
        with pytest.raises(error, match=message):
            summary_figure(rows, tmp_path / "summary.png", worst)
        assert not list(tmp_path.iterdir())

    def test_bad_paths_are_named(self, tmp_path):
        with pytest.raises(OutputError, match=r"s\.xyz: matplotlib writes no picture format with the extension \.xyz"):
            summary_figure(ROWS, tmp_path / "s.xyz")
        with pytest.raises(OutputError, match="the folder .*missing does not exist"):
            summary_figure(ROWS, tmp_path / "missing" / "s.png")
        assert not list(tmp_path.iterdir())


class TestWithoutMatplotlib:
    def test_a_one_line_error_says_what_to_install(self, monkeypatch, tmp_path):
        monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
        calls = {
            "flow_figure": lambda: flow_figure(_scan(60, 40), _still(60, 40)),
            "summary_figure": lambda: summary_figure(ROWS, tmp_path / "s"),
        }
        for name, call in calls.items():
            with pytest.raises(ImportError) as error:
                call()
            assert str(error.value) == f"{name} needs matplotlib: pip install 'siftflow_nn[plot]'"
        assert not list(tmp_path.iterdir())

    def test_the_package_imports_without_it(self):
        code = "import sys; sys.modules['matplotlib'] = None; import siftflow_nn, siftflow_nn.metrics.figures"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
