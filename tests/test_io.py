"""The siftflow-nn command line, the image reader and the flow pictures / .flo files."""

import os
import stat
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import siftflow_nn as sf
from siftflow_nn.cli import main
from siftflow_nn.io import OutputError, read_image, write_image
from tests.base import BaseTester


def _run(*argv):
    return main([str(arg) for arg in argv])


class TestImageFiles(BaseTester):
    @pytest.mark.parametrize(
        ("mode", "array", "channels"),
        [
            ("RGBA", np.random.default_rng(0).integers(0, 256, (12, 14, 4), dtype=np.uint8), 3),
            ("L", np.random.default_rng(1).integers(0, 256, (12, 14), dtype=np.uint8), 1),
            ("I;16", np.random.default_rng(2).integers(0, 65536, (12, 14), dtype=np.uint16), 1),
        ],
    )
    def test_image_formats(self, tmp_path, mode, array, channels):
        path = tmp_path / "image.png"
        Image.fromarray(array).save(path)  # Pillow infers RGBA, L and I;16 from the array
        assert Image.open(path).mode == mode
        image = read_image(path)
        assert image.shape == (channels, 12, 14) and image.min() >= 0 and image.max() <= 1
        if mode == "I;16":
            self.assert_close(image[0], torch.from_numpy(array / 65535.0).float())
        if mode == "RGBA":
            self.assert_close(image, torch.from_numpy(array[..., :3] / 255.0).permute(2, 0, 1).float())
        assert _run("extract", path, "-o", tmp_path / "out.npz") == 0

    def test_exif_orientation_is_applied_as_viewers_do(self, tmp_path):
        array = np.zeros((20, 50, 3), np.uint8)
        array[:, :10] = 255  # a white band on the left of the stored pixels
        image = Image.fromarray(array)
        exif = image.getexif()
        exif[0x0112] = 6  # "rotate 90 CW to view"
        image.save(tmp_path / "portrait.jpg", exif=exif)
        read = read_image(tmp_path / "portrait.jpg")
        assert read.shape == (3, 50, 20)  # upright: taller than wide
        assert read[:, :10].mean() > 0.9 and read[:, -10:].mean() < 0.1  # the band is now on top

    def test_outputs_into_missing_folders_name_the_users_path(self, tmp_path):
        target = tmp_path / "missing" / "flow.flo"
        with pytest.raises(OutputError, match=f"{target}: the folder {target.parent} does not exist"):
            sf.write_flo(target, torch.zeros(2, 3, 3))

    def test_atomic_writes_leave_the_umask_alone_across_threads(self, tmp_path):
        """Files get 0666 minus the umask from the system, without changing the process's umask."""
        previous = os.umask(0o027)
        try:
            seen = []
            threads = [
                threading.Thread(
                    target=lambda i=i: (
                        write_image(tmp_path / f"{i}.png", torch.rand(3, 4, 4)),
                        seen.append(os.umask(0o027)),
                    )
                )  # fmt: skip
                for i in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert set(seen) == {0o027}
            assert {stat.S_IMODE((tmp_path / f"{i}.png").stat().st_mode) for i in range(8)} == {0o640}
        finally:
            os.umask(previous)

    def test_writing_a_batch_is_refused_with_its_shape(self):
        with pytest.raises(
            ValueError, match=r"image must be a C x H x W tensor with C = 1, 3 or 4, got .*\(1, 3, 8, 8\)"
        ):
            write_image("x.png", torch.rand(1, 3, 8, 8))
