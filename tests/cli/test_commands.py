"""The siftflow-nn command line, the image reader and the flow pictures / .flo files."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import siftflow_nn as sf
from siftflow_nn.cli import main
from siftflow_nn.io import read_image
from siftflow_nn.synthetic import translated_pair
from tests.base import BaseTester


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return str(path)


@pytest.fixture
def images(tmp_path):
    image1, image2, _ = translated_pair(40, 48, dx=2, dy=1)
    to_u8 = lambda image: (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    return _save(tmp_path / "a.png", to_u8(image1)), _save(tmp_path / "b.png", to_u8(image2))


def _run(*argv):
    return main([str(arg) for arg in argv])


def _fails(capsys, *argv) -> str:
    assert _run(*argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and message.startswith("siftflow-nn: error:")
    return message


def _usage(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as stop:
        main([str(arg) for arg in argv])
    assert stop.value.code == 2
    return capsys.readouterr().err


class TestCommands(BaseTester):
    def test_extract_npz_equals_the_library(self, tmp_path, images):
        out = tmp_path / "d.npz"
        assert _run("extract", *images, "-o", out, "--cell-size", "2,3", "--step", "2", "--device", "cpu") == 0
        with np.load(out) as archive:
            assert sorted(archive.files) == ["a.png", "b.png"]
            stored = archive["a.png"]
        expected = sf.sift_flow_descriptor(read_image(images[0])[None], cell_size=[2, 3], step_size=2)
        np.testing.assert_allclose(stored, sf.descriptor_to_hwc(expected)[0].numpy())
        assert stored.shape == (20, 24, 256)

    def test_extract_uint8_pt_and_chw(self, tmp_path, images):
        out = tmp_path / "d.pt"
        assert _run("extract", *images, "-o", out, "--uint8", "--layout", "chw") == 0
        stored = torch.load(out)
        expected = sf.to_uint8(sf.sift_flow_descriptor(read_image(images[1])[None]))[0]
        assert stored["b.png"].dtype == torch.uint8 and torch.equal(stored["b.png"], expected)

    def test_extract_groups_images_of_several_sizes(self, tmp_path, images):
        small = _save(tmp_path / "small.png", np.full((10, 12), 128, np.uint8))
        out = tmp_path / "d.npz"
        assert _run("extract", images[0], small, images[1], "-o", out, "--batch-size", "1") == 0
        with np.load(out) as archive:
            assert archive["small.png"].shape == (10, 12, 128) and archive["a.png"].shape == (40, 48, 128)

    @pytest.mark.parametrize("method", ["local", "sift-flow"])
    def test_flow_writes_a_picture_and_a_flo_file(self, tmp_path, images, method):
        picture, flo = tmp_path / "flow.png", tmp_path / "flow.flo"
        radius = ["--radius", "3"] if method == "local" else []
        assert _run("flow", *images, "-o", picture, "--flo", flo, "--method", method, *radius) == 0
        assert Image.open(picture).size == (48, 40)
        estimate = sf.read_flo(flo)
        assert estimate.shape == (2, 40, 48)
        assert estimate[:, 10:-10, 10:-10].eq(torch.tensor([2.0, 1.0]).view(2, 1, 1)).all()

    def test_show_writes_the_descriptor_colours(self, tmp_path, images):
        out = tmp_path / "show.png"
        assert _run("show", images[0], "-o", out) == 0
        assert Image.open(out).size == (48, 40) and Image.open(out).mode == "RGB"

    def test_the_commands_start_without_importing_lightning(self):
        """Lightning takes seconds to import and only extract-dataset needs it: building the parser
        (every command's start, and each of ``docunet --jobs N``'s processes) must not import it."""
        code = "import sys; from siftflow_nn.cli import build_parser; build_parser(); print(sorted(sys.modules))"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        modules = eval(result.stdout)
        assert "siftflow_nn.cli.docunet" in modules
        assert not [name for name in modules if name.split(".")[0] in ("pytorch_lightning", "lightning")]

    def test_demo_runs_out_of_the_box_as_a_module(self, tmp_path):
        """``python -m siftflow_nn demo``: pictures written, errors printed, SIFT flow ahead of local matching."""
        result = subprocess.run(
            [sys.executable, "-m", "siftflow_nn", "demo", "-o", tmp_path / "demo", "--height", "96", "--width", "112"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        names = {path.name for path in (tmp_path / "demo").iterdir()}
        assert {
            "image1.png",
            "image2.png",
            "flow_truth.png",
            "flow_sift_flow.png",
            "flow_sift_flow.flo",
            "overview.png",
        } <= names
        errors = {
            line.split()[0]: float(line.split("EPE")[1].split()[0])
            for line in result.stdout.splitlines()
            if "EPE" in line
        }
        assert errors["SIFT"] < errors["local_match"] < errors["zero"]

    def test_errors_are_one_line_with_status_2(self, tmp_path, images, capsys):
        out = tmp_path / "out.npz"
        missing = tmp_path / "missing.png"
        assert str(missing) in _fails(capsys, "extract", images[0], missing, "-o", out)
        not_image = tmp_path / "notes.png"
        not_image.write_text("not an image")
        assert "notes.png: not a readable image" in _fails(capsys, "extract", not_image, "-o", out)
        assert "is a directory" in _fails(capsys, "extract", str(tmp_path), "-o", out)
        assert "does not exist" in _fails(capsys, "extract", images[0], "-o", tmp_path / "nowhere" / "out.npz")
        other = _save(tmp_path / "other.png", np.zeros((30, 30, 3), np.uint8))
        message = _fails(capsys, "flow", images[0], other, "-o", tmp_path / "f.png")
        assert "a.png and" in message and "other.png differ in size: (40, 48) and (30, 30)" in message
        assert "too small" in _fails(capsys, "extract", images[0], "-o", out, "--cell-size", "12", "--no-boundary")
        assert not out.exists() and not (tmp_path / "f.png").exists()
        assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no temporary files

    def test_empty_image_list_is_a_usage_error(self, capsys):
        with pytest.raises(SystemExit) as stop:
            main(["extract", "-o", "out.npz"])
        assert stop.value.code == 2

    def test_unwritable_output_folder(self, tmp_path, images, capsys, monkeypatch):
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        if os.access(locked, os.W_OK):  # root writes anyway: make the check see what a user would
            monkeypatch.setattr("siftflow_nn.cli._arguments.os.access", lambda path, mode: False)
        try:
            assert "not writable" in _fails(capsys, "extract", images[0], "-o", locked / "out.npz")
            assert list(locked.iterdir()) == []
        finally:
            locked.chmod(0o700)

    def test_output_folder_that_is_a_file(self, tmp_path, images, capsys):
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        assert "does not exist" in _fails(capsys, "flow", *images, "-o", blocker / "flow.png")

    def test_written_files_get_the_usual_mode(self, tmp_path, images):
        # Files are written under a private temporary name, then renamed: the result must still be
        # readable by others as a plain open() would make it (mode 0666 minus the umask).
        previous = os.umask(0o022)
        try:
            assert _run("extract", images[0], "-o", tmp_path / "d.npz", "--device", "cpu") == 0
        finally:
            os.umask(previous)
        assert stat.S_IMODE((tmp_path / "d.npz").stat().st_mode) == 0o644
        assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []

    def test_flow_refuses_options_it_cannot_honour(self, tmp_path, images, capsys):
        out = tmp_path / "f.png"
        assert "unrecognized arguments: --step 2" in _usage(capsys, "flow", *images, "-o", out, "--step", "2")
        assert "unrecognized arguments: --no-boundary" in _usage(capsys, "flow", *images, "-o", out, "--no-boundary")
        assert "--fast: applies to --method sift-flow only" in _fails(capsys, "flow", *images, "-o", out, "--method",
                                                                      "local", "--fast")  # fmt: skip
        assert "--radius: applies to --method local only" in _fails(capsys, "flow", *images, "-o", out, "--radius", "3")
        assert not out.exists()

    def test_outputs_are_checked_before_any_work(self, tmp_path, images, capsys, monkeypatch):
        import siftflow_nn.cli.flow as flow_command

        monkeypatch.setattr(flow_command, "_estimate", lambda *args: pytest.fail("computed before checking -o"))
        folder = tmp_path / "existing"
        folder.mkdir()
        for command, extra in (("flow", []), ("extract", []), ("show", [])):
            inputs = images if command != "show" else images[:1]
            message = _fails(capsys, command, *inputs, "-o", folder, *extra)
            assert f"{folder} is a folder; give a file name" in message
        assert "--flo" in _fails(capsys, "flow", *images, "-o", tmp_path / "f.png", "--flo", folder)
        assert "unsupported extension .txt" in _fails(capsys, "extract", images[0], "-o", tmp_path / "d.txt")
        assert "a .npy file holds one array" in _fails(capsys, "extract", *images, "-o", tmp_path / "d.npy")

    def test_output_format_follows_the_extension(self, tmp_path, images):
        assert _run("extract", images[0], "-o", tmp_path / "d.pt") == 0
        assert torch.load(tmp_path / "d.pt")["a.png"].shape == (40, 48, 128)
        assert _run("extract", images[0], "-o", tmp_path / "d.npy", "--uint8") == 0
        assert np.load(tmp_path / "d.npy").dtype == np.uint8
        assert _run("flow", *images, "-o", tmp_path / "f.npz", "--method", "local") == 0
        with np.load(tmp_path / "f.npz") as archive:
            assert archive["flow"].shape == (2, 40, 48)
        assert _run("flow", *images, "-o", tmp_path / "f.pt", "--method", "local") == 0
        assert torch.load(tmp_path / "f.pt").shape == (2, 40, 48)
        assert _run("show", images[0], "-o", tmp_path / "s.webp") == 0
        assert Image.open(tmp_path / "s.webp").format == "WEBP"
        assert _run("flow", *images, "-o", tmp_path / "f.jpg", "--method", "local") == 0
        assert Image.open(tmp_path / "f.jpg").format == "JPEG"

    def test_extract_writes_the_original_layout_without_a_second_copy(self, tmp_path, images):
        assert _run("extract", *images, "-o", tmp_path / "d.npz", "--step", "2") == 0
        with np.load(tmp_path / "d.npz") as archive:
            stored = archive["b.png"]
        expected = sf.descriptor_to_hwc(sf.sift_flow_descriptor(read_image(images[1])[None], step_size=2))[0]
        np.testing.assert_array_equal(stored, expected.numpy())

    def test_rgb_and_gray_images_are_matched_in_gray_with_a_note(self, tmp_path, images, capsys):
        gray = _save(tmp_path / "gray.png", np.asarray(Image.open(images[1]).convert("L")))
        assert _run("flow", images[0], gray, "-o", tmp_path / "f.flo", "--method", "local") == 0
        assert "matching both in grayscale" in capsys.readouterr().err
        estimate = sf.read_flo(tmp_path / "f.flo")
        assert estimate[:, 10:-10, 10:-10].eq(torch.tensor([2.0, 1.0]).view(2, 1, 1)).float().mean() > 0.9

    def test_half_precision_runs_the_librarys_autocast_path(self, tmp_path, images):
        assert _run("extract", images[0], "-o", tmp_path / "bf16.npz", "--dtype", "bfloat16", "--uint8") == 0
        with np.load(tmp_path / "bf16.npz") as archive:
            stored = archive["a.png"].astype(int)
        image = read_image(images[0])[None]
        with torch.autocast("cpu", torch.bfloat16):
            expected = sf.to_uint8(sf.descriptor_to_hwc(sf.sift_flow_descriptor(image)))[0].numpy().astype(int)
        np.testing.assert_array_equal(stored, expected)
        full = sf.to_uint8(sf.descriptor_to_hwc(sf.sift_flow_descriptor(image)))[0].numpy().astype(int)
        assert np.abs(stored - full).max() <= 2  # within bf16 rounding, not a cast of the input image

    def test_demo_refuses_sizes_it_cannot_score(self, tmp_path, capsys):
        for height in ("16", "8"):
            message = _fails(capsys, "demo", "-o", tmp_path / "demo", "--height", height, "--width", "16")
            assert "--height/--width: at least 32 pixels each" in message
        assert not (tmp_path / "demo").exists()
        assert "must be a non-negative finite number, got -3" in _usage(capsys, "demo", "--max-displacement", "-3")

    def test_only_argument_errors_are_usage_errors(self, tmp_path, images, monkeypatch):
        """A ValueError from a bug deep inside is not dressed up as a user's mistake: it keeps its traceback."""
        import siftflow_nn.cli.flow as flow_command

        def broken(*args):
            raise ValueError("an internal invariant failed")

        monkeypatch.setattr(flow_command, "_estimate", broken)
        with pytest.raises(ValueError, match="an internal invariant failed"):
            main(["flow", *images, "-o", str(tmp_path / "f.png")])

    def test_not_enough_memory_fails_first_with_the_estimate(self, tmp_path, images, capsys, monkeypatch):
        monkeypatch.setattr("siftflow_nn.cli._arguments.available_memory", lambda: 1 << 20)
        message = _fails(capsys, "flow", *images, "-o", tmp_path / "f.png")
        assert "SIFT flow on these images needs about" in message and "GiB is available; resize them" in message
        assert "use a larger --step" in _fails(capsys, "show", images[0], "-o", tmp_path / "s.png")
        assert "use a larger --step" in _fails(capsys, "extract", images[0], "-o", tmp_path / "d.npz")

    def test_long_work_shows_progress_and_the_version(self, tmp_path, images, capsys):
        assert _run("flow", *images, "-o", tmp_path / "f.png") == 0
        progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("SIFT flow:")]
        assert len(progress) >= 1 and "4/4 levels" in progress[-1]
        assert _run("flow", *images, "-o", tmp_path / "f.png", "--method", "local") == 0
        assert "local matching: 81/81 displacements" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["--version"])
        assert capsys.readouterr().out.strip() == f"siftflow-nn {sf.__version__}"
