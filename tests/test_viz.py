"""The siftflow-nn command line, the image reader and the flow pictures / .flo files."""

import numpy as np
import pytest
import torch

import siftflow_nn as sf
from siftflow_nn.viz import picture_grid
from tests.base import BaseTester


class TestPictures(BaseTester):
    def test_flo_round_trip_and_bad_files(self, tmp_path):
        flow = torch.randn(2, 5, 7)
        sf.write_flo(tmp_path / "x.flo", flow)
        assert torch.equal(sf.read_flo(tmp_path / "x.flo"), flow)
        raw = (tmp_path / "x.flo").read_bytes()
        assert raw[:4] == b"PIEH" and len(raw) == 12 + 4 * 2 * 35  # magic, width, height, data
        (tmp_path / "bad.flo").write_bytes(b"nope")
        with pytest.raises(ValueError, match="not a Middlebury .flo file"):
            sf.read_flo(tmp_path / "bad.flo")
        (tmp_path / "short.flo").write_bytes(raw[:-8])
        with pytest.raises(ValueError, match="truncated"):
            sf.read_flo(tmp_path / "short.flo")

    def test_flow_colours_follow_the_middlebury_wheel(self):
        flow = torch.zeros(2, 1, 5)
        flow[:, 0, 1] = torch.tensor([1.0, 0.0])  # right: red
        flow[:, 0, 2] = torch.tensor([0.0, 1.0])  # down: yellow-green side of the wheel
        flow[:, 0, 3] = torch.tensor([-1.0, 0.0])  # left: cyan
        flow[:, 0, 4] = float("nan")
        colours = (sf.flow_to_color(flow)[:, 0].T * 255).round().int()
        assert colours[0].tolist() == [255, 255, 255]  # no motion: white
        assert colours[1].tolist() == [255, 0, 0]
        assert colours[3][0] < 60 and colours[3][1] > 200 and colours[3][2] > 200
        assert colours[4].tolist() == [0, 0, 0]

    def test_picture_grid_places_pictures_under_their_captions(self):
        black, white = torch.zeros(3, 8, 10), torch.ones(3, 8, 10)
        grid = picture_grid({"black": black, "white": white, "third": black}, columns=2)
        assert grid.shape == (2 * (14 + 8), 2 * 10 + 2, 3) and grid.dtype == np.uint8
        assert (grid[14:22, :10] == 0).all() and (grid[14:22, 12:22] == 255).all()  # row 1, below the captions
        assert (grid[36:44, :10] == 0).all() and (grid[36:44, 12:22] == 255).all()  # row 2: one picture, white rest
        assert (grid[:14, :10] < 128).any(), "the caption is drawn in dark (antialiased) text above its picture"

    def test_picture_grid_rejects_pictures_of_other_sizes(self):
        with pytest.raises(ValueError, match="pictures must all be 8 x 10 x 3"):
            picture_grid({"a": torch.zeros(3, 8, 10), "b": torch.zeros(3, 9, 10)})

    def test_descriptor_colours_of_a_map_with_nan_and_a_large_one(self):
        descriptor = torch.rand(16, 6, 7)
        descriptor[:, 2, 3] = float("nan")
        colours = sf.descriptor_to_color(descriptor)
        assert colours.shape == (3, 6, 7) and torch.isfinite(colours).all()
        assert colours[:, 2, 3].tolist() == [0.0, 0.0, 0.0]
        everything_nan = sf.descriptor_to_color(torch.full((8, 3, 3), float("nan")))
        assert everything_nan.abs().max() == 0

    @pytest.mark.parametrize("max_flow", [0, -1, float("nan"), True])
    def test_max_flow_must_be_positive(self, max_flow):
        with pytest.raises(ValueError, match="max_flow must be a positive number"):
            sf.flow_to_color(torch.zeros(2, 3, 3), max_flow=max_flow)
