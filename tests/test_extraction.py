"""extract-dataset: shards and manifest, two DDP processes, resuming after an interruption, bad files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytorch_lightning", reason="the lightning extra is not installed")

import siftflow_nn as sf  # noqa: E402
from siftflow_nn.extraction import extract_dataset, find_images  # noqa: E402
from siftflow_nn.io import read_image  # noqa: E402

SHARD_SIZE = 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """20 images of two sizes (some in a subfolder), one corrupt file, one non-image file."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    generator = np.random.default_rng(0)
    for index in range(20):
        shape = (24, 32, 3) if index % 2 else (32, 24)
        where = root / "sub" if index % 3 == 0 else root
        Image.fromarray(generator.integers(0, 256, shape, dtype=np.uint8)).save(where / f"image_{index:02d}.png")
    (root / "broken.png").write_text("not an image")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def _descriptors(output_dir) -> dict[str, np.ndarray]:
    manifest = json.loads((output_dir / "manifest.json").read_text())
    result = {}
    for entry in manifest["images"]:
        if entry["status"] == "ok":
            with np.load(output_dir / "shards" / entry["shard"]) as shard:
                result[entry["path"]] = shard[entry["key"]]
    return result


def _cli(*argv, cwd):
    command = [sys.executable, "-m", "siftflow_nn", "extract-dataset", *map(str, argv)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def single(folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("single")
    manifest = extract_dataset(
        folder,
        output,
        {"cell_size": 2},
        shard_size=SHARD_SIZE,
        num_workers=0,
        trainer_options={"accelerator": "cpu", "enable_progress_bar": False},
    )
    return output, manifest


def test_manifest_lists_every_image_and_the_failure(folder, single):
    output, manifest = single
    paths = [entry["path"] for entry in manifest["images"]]
    assert paths == find_images(folder) and len(paths) == 21
    failed = [entry for entry in manifest["images"] if entry["status"] == "failed"]
    assert [entry["path"] for entry in failed] == ["broken.png"] and "not a readable image" in failed[0]["error"]
    assert len(list((output / "shards").glob("*.npz"))) == 6  # 21 images, 4 per shard
    assert json.loads((output / "manifest.json").read_text()) == manifest


def test_stored_descriptors_are_the_original_uint8_form(folder, single):
    stored = _descriptors(single[0])
    for path in ("image_01.png", "sub/image_00.png"):
        expected = sf.to_uint8(sf.sift_flow_descriptor(read_image(folder / path)[None]))[0].numpy()
        np.testing.assert_array_equal(stored[path], expected)


def test_two_ddp_processes_give_the_same_descriptors(folder, single, tmp_path):
    _cli(
        folder,
        "-o",
        tmp_path / "ddp",
        "--shard-size",
        SHARD_SIZE,
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--workers",
        "0",
        cwd=tmp_path,
    )
    expected, got = _descriptors(single[0]), _descriptors(tmp_path / "ddp")
    assert got.keys() == expected.keys()
    assert all(np.array_equal(got[path], expected[path]) for path in expected)


def test_an_interrupted_run_resumes_and_completes(folder, single, tmp_path):
    output = tmp_path / "resumed"
    _cli(folder, "-o", output, "--shard-size", SHARD_SIZE, "--accelerator", "cpu", "--workers", "0", cwd=tmp_path)
    shards = output / "shards"
    # As if killed while writing shard 3 and before shards 4 and 5: their files are gone, a
    # temporary is left behind, and the manifest was never merged.
    for index in (3, 4, 5):
        (shards / f"shard_{index:05d}.json").unlink()
    (shards / "shard_00004.npz").unlink()
    (shards / ".shard_00003.npz.tmp.npz").write_bytes(b"partial")
    (output / "manifest.json").unlink()
    untouched = {path.name: path.stat().st_mtime_ns for path in shards.glob("shard_0000[012].*")}

    _cli(folder, "-o", output, "--shard-size", SHARD_SIZE, "--accelerator", "cpu", "--workers", "0", cwd=tmp_path)
    assert {path.name: path.stat().st_mtime_ns for path in shards.glob("shard_0000[012].*")} == untouched
    expected, got = _descriptors(single[0]), _descriptors(output)
    assert got.keys() == expected.keys() and all(np.array_equal(got[p], expected[p]) for p in expected)


def test_float16_store(folder, tmp_path):
    manifest = extract_dataset(
        folder,
        tmp_path,
        {"cell_size": 3, "step_size": 2},
        shard_size=8,
        store="float16",
        num_workers=0,
        trainer_options={"accelerator": "cpu", "enable_progress_bar": False},
    )
    entry = next(entry for entry in manifest["images"] if entry["path"] == "image_02.png")
    with np.load(tmp_path / "shards" / entry["shard"]) as shard:
        stored = shard[entry["key"]]
    expected = sf.sift_flow_descriptor(read_image(folder / "image_02.png")[None], cell_size=3, step_size=2)[0]
    assert stored.dtype == np.float16 and stored.shape == (128, 16, 12)
    np.testing.assert_allclose(stored.astype(np.float32), expected.numpy(), atol=1e-3)


def test_errors(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "siftflow_nn",
            "extract-dataset",
            str(tmp_path / "nothing"),
            "-o",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "no such folder" in result.stderr and result.stderr.count("\n") == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files found"):
        extract_dataset(tmp_path / "empty", tmp_path / "out")
    assert not os.path.exists(tmp_path / "out" / "manifest.json")
