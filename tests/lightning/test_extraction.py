"""extract-dataset and open_descriptors: shards, resumes, ranks, bad inputs, the reader."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytorch_lightning", reason="the lightning extra is not installed")

import siftflow_nn as sf  # noqa: E402
from siftflow_nn.cli import main  # noqa: E402
from siftflow_nn.io import read_image  # noqa: E402
from siftflow_nn.lightning import _shards  # noqa: E402
from siftflow_nn.lightning.extraction import ExtractionError, ExtractionOptions, extract_dataset, find_images  # noqa: E402
from tests.base import BaseTester

SHARD_SIZE = 4


CPU = {"accelerator": "cpu"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """14 images of two sizes (some in a subfolder), one corrupt file, one non-image file."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    generator = np.random.default_rng(0)
    for index in range(14):
        shape = (24, 32, 3) if index % 2 else (32, 24)
        where = root / "sub" if index % 3 == 0 else root
        Image.fromarray(generator.integers(0, 256, shape, dtype=np.uint8)).save(where / f"image_{index:02d}.png")
    (root / "broken.png").write_text("not an image")
    (root / "notes.txt").write_text("ignored: not an image extension")
    return root


def _extract(folder, output, **options):
    run = {key: options.pop(key) for key in ("overwrite",) if key in options}
    return extract_dataset(folder, output, ExtractionOptions(shard_size=SHARD_SIZE, **options), num_workers=0,
                           trainer_options=CPU, **run)  # fmt: skip


@pytest.fixture(scope="module")
def single(folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("single")
    return output, _extract(folder, output)


def _arrays(output) -> dict[str, np.ndarray]:
    with sf.open_descriptors(output) as store:
        return {path: store[path].numpy() for path in store}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[key], b[key]) for key in a)


def _cli(*argv, cwd, check=True):
    command = [sys.executable, "-m", "siftflow_nn", "extract-dataset", *map(str, argv)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


class TestExtraction(BaseTester):
    def test_manifest_lists_every_image_and_the_failure(self, folder, single):
        output, manifest = single
        assert [entry["path"] for entry in manifest["images"]] == find_images(folder)[0] and len(
            manifest["images"]
        ) == 15
        failed = [entry for entry in manifest["images"] if entry["status"] == "failed"]
        assert [entry["path"] for entry in failed] == ["broken.png"] and "not a readable image" in failed[0]["error"]
        assert len(list((output / "shards").glob("*.npz"))) == 4  # 15 images, 4 per shard
        assert json.loads((output / "manifest.json").read_text()) == manifest
        assert manifest["root"] == str(folder.absolute()) and os.path.isabs(manifest["root"])
        part = json.loads((output / "shards" / "shard_00000.json").read_text())
        assert part["options"] == ExtractionOptions(shard_size=SHARD_SIZE).as_json()
        assert part["bytes"] == (output / "shards" / "shard_00000.npz").stat().st_size and len(part["sha256"]) == 64

    def test_reader_gives_the_library_descriptors(self, folder, single):
        store = sf.open_descriptors(single[0])
        assert len(store) == 14 and "broken.png" not in store and list(store)[0] == "image_01.png"
        assert store.options["store"] == "uint8" and store.options["cell_size"] == [2]
        for path in ("image_01.png", "sub/image_00.png"):
            expected = sf.to_uint8(sf.sift_flow_descriptor(read_image(folder / path)[None]))[0]
            assert torch.equal(store[path], expected)
        with pytest.raises(
            KeyError, match="broken.png: no descriptor, the image failed at extraction: .*not a readable"
        ):
            store["broken.png"]
        with pytest.raises(KeyError, match="nothing.png: not in this extraction"):
            store["nothing.png"]
        assert store.failed.keys() == {"broken.png"}
        with pytest.raises(FileNotFoundError, match="no readable manifest.json"):
            sf.open_descriptors(folder)

    def test_reader_rejects_a_truncated_or_changed_shard(self, single, tmp_path):
        output = tmp_path / "copy"
        subprocess.run(["cp", "-r", str(single[0]), str(output)], check=True)
        shard = output / "shards" / "shard_00001.npz"
        content = shard.read_bytes()
        shard.write_bytes(content[: len(content) // 2])
        store = sf.open_descriptors(output)
        path = next(p for p, entry in zip(store, store._records.values()) if entry["shard"] == "shard_00001.npz")
        with pytest.raises(sf.ShardError, match="shard_00001.npz: .* bytes where its manifest part records"):
            store[path]
        shard.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # same size, one bit changed
        with pytest.raises(sf.ShardError, match="SHA-256"):
            sf.open_descriptors(output)[path]

    def test_float16_store(self, folder, tmp_path):
        manifest = _extract(folder, tmp_path, cell_size=3, step_size=2, store="float16")
        stored = sf.open_descriptors(tmp_path)["image_02.png"]
        expected = sf.sift_flow_descriptor(read_image(folder / "image_02.png")[None], cell_size=3, step_size=2)[0]
        assert (
            stored.dtype == torch.float16
            and stored.shape == (128, 16, 12)
            and manifest["options"]["store"] == "float16"
        )
        self.assert_close(stored.float(), expected, atol=1e-3, rtol=0)

    def test_more_ranks_than_shards_and_a_ddp_resume(self, folder, single, tmp_path):
        """Two ranks on one shard (the default shard size), then a DDP resume with one shard left."""
        quiet = _cli(folder, "-o", tmp_path / "one", "--shard-size", 64, "--accelerator", "cpu", "--devices", 2,
                     "--strategy", "ddp", "--workers", 0, cwd=tmp_path)  # fmt: skip
        assert "extracted 14 of 15 images (1 failed, 0 entries skipped)" in quiet.stdout
        for noise in ("GPU available", "Tip:", "LeafSpec", "distributed_backend", "Initializing distributed"):
            assert noise not in quiet.stderr, quiet.stderr
        assert _same(_arrays(tmp_path / "one"), _arrays(single[0]))

        output = tmp_path / "resumed"
        subprocess.run(["cp", "-r", str(single[0]), str(output)], check=True)
        for suffix in (".npz", ".json"):
            (output / "shards" / f"shard_00003{suffix}").unlink()
        (output / "manifest.json").unlink()
        _cli(folder, "-o", output, "--shard-size", SHARD_SIZE, "--accelerator", "cpu", "--devices", 2,
             "--strategy", "ddp", "--workers", 0, cwd=tmp_path)  # fmt: skip
        assert _same(_arrays(output), _arrays(single[0]))

    def test_a_rank_ends_when_its_launcher_is_killed(self, tmp_path):
        """A rank started by Lightning's script launcher must not go on writing once the launcher dies."""
        launcher = (
            "import subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time\\n"
            "from siftflow_nn.lightning.extraction import _exit_with_parent\\n_exit_with_parent()\\n"
            "print(flush=True)\\ntime.sleep(60)'], stdout=subprocess.PIPE, text=True)\n"
            "child.stdout.readline()\n"  # the child watches from here on, however long its imports took
            "print(child.pid, flush=True)\n"
            "child.wait()\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        os.kill(child, signal.SIGKILL)
        pytest.fail("the rank outlived its launcher")

    def test_a_resume_with_other_options_is_refused_or_redone(self, folder, tmp_path, capsys):
        output = tmp_path / "out"
        _extract(folder, output, store="float16", step_size=2)
        assert main(["extract-dataset", str(folder), "-o", str(output), "--shard-size", "4", "--workers", "0",
                     "--accelerator", "cpu"]) == 2  # fmt: skip
        message = capsys.readouterr().err.strip()
        assert message.count("\n") == 0 and "other options" in message
        assert "step_size (2 -> 1)" in message and "store ('float16' -> 'uint8')" in message
        assert sf.open_descriptors(output)["image_02.png"].dtype == torch.float16  # untouched
        manifest = _extract(folder, output, overwrite=True)
        store = sf.open_descriptors(output)
        assert manifest["options"]["store"] == "uint8" and store.options["step_size"] == 1
        assert all(store[path].dtype == torch.uint8 and store[path].shape[1] in (24, 32) for path in store)

    def test_resume_redoes_truncated_and_changed_shards_and_clears_temporaries(self, folder, single, tmp_path):
        output = tmp_path / "out"
        subprocess.run(["cp", "-r", str(single[0]), str(output)], check=True)
        shards = output / "shards"
        truncated = shards / "shard_00001.npz"
        truncated.write_bytes(truncated.read_bytes()[:1000])
        changed = shards / "shard_00002.npz"
        content = changed.read_bytes()
        changed.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
        (output / "manifest.json").unlink()
        leftover = shards / ".shard_00003.12345.tmp.npz"
        leftover.write_bytes(b"\0" * 4096)  # what a kill during a shard write leaves
        kept = (shards / "shard_00000.npz").stat().st_mtime_ns
        _extract(folder, output)
        assert (shards / "shard_00000.npz").stat().st_mtime_ns == kept
        assert not leftover.exists() and not list(shards.glob(".*"))
        assert _same(_arrays(output), _arrays(single[0]))

    def test_a_write_failure_is_one_line_and_a_resume_completes(self, folder, single, tmp_path, capsys, monkeypatch):
        output = tmp_path / "out"
        calls = []
        finish = _shards.ShardWriter.finish

        def full_disk(writer):
            calls.append(writer.path.name)
            if len(calls) == 3:
                raise OSError(28, "No space left on device", str(writer.temporary))
            return finish(writer)

        monkeypatch.setattr(_shards.ShardWriter, "finish", full_disk)
        argv = ["extract-dataset", str(folder), "-o", str(output), "--shard-size", "4", "--workers", "0",
                "--accelerator", "cpu"]  # fmt: skip
        assert main(argv) == 2
        message = capsys.readouterr().err.strip()
        assert message.count("\n") == 0 and "No space left on device" in message and "run again to resume" in message
        monkeypatch.setattr(_shards.ShardWriter, "finish", finish)
        assert main(argv) == 0
        assert _same(_arrays(output), _arrays(single[0]))

    def test_a_second_run_on_the_same_output_is_refused(self, folder, tmp_path):
        import fcntl

        output = tmp_path / "out"
        output.mkdir()
        with open(output / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            with pytest.raises(ExtractionError, match="another extract-dataset run is writing there"):
                _extract(folder, output)

    def test_bad_images_are_recorded_and_the_run_goes_on(self, tmp_path, monkeypatch):
        root = tmp_path / "images"
        root.mkdir()
        Image.fromarray(np.zeros((30, 40), np.uint8)).save(root / "fine.png")
        Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / "tiny.png")
        Image.fromarray(np.zeros((60, 70), np.uint8)).save(root / "large.png")
        Image.fromarray(np.zeros((100, 100), np.uint8)).save(root / "bomb.png")
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2200)  # 100 x 100 > 2 x 2200: Pillow's bomb error
        with pytest.warns(Image.DecompressionBombWarning):  # large.png: over Pillow's limit, under twice it
            options = ExtractionOptions(include_boundary=False, max_pixels=4000)
            manifest = extract_dataset(root, tmp_path / "out", options, num_workers=0, trainer_options=CPU)
        status = {entry["path"]: entry.get("error", "ok") for entry in manifest["images"]}
        assert status["fine.png"] == "ok"
        assert "tiny.png: 1 x 1 is too small for cell_size=[2]" in status["tiny.png"]
        assert "large.png: 70 x 60 = 4200 pixels, over the limit of 4000" in status["large.png"]
        assert "bomb.png: too many pixels to decode safely" in status["bomb.png"]

    def test_input_policy_links_and_unreadable_folders(self, tmp_path, monkeypatch):
        root, outside = tmp_path / "images", tmp_path / "outside"
        (root / "real").mkdir(parents=True)
        outside.mkdir()
        for folder, name in ((root, "a.png"), (root / "real", "b.png"), (outside, "c.png")):
            Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / name)
        (root / "link_inside.png").symlink_to(root / "a.png")
        (root / "link_outside.png").symlink_to(outside / "c.png")
        (root / "dangling.png").symlink_to(root / "missing.png")
        (root / "linked_folder").symlink_to(root / "real")
        (root / "real" / "loop").symlink_to(root)
        (root / "locked").mkdir()
        scandir = os.scandir

        def unreadable(path):
            if str(path).endswith("locked"):
                raise PermissionError(13, "Permission denied", str(path))
            return scandir(path)

        monkeypatch.setattr(os, "scandir", unreadable)
        paths, skipped = find_images(root)
        assert paths == ["a.png", "link_inside.png", "linked_folder/b.png"]  # real/ is linked_folder/, reached once
        assert skipped == {
            "dangling.png": "dangling symbolic link",
            "link_outside.png": "symbolic link to outside the input folder (--follow-symlinks follows it)",
            "locked": "folder not readable (Permission denied)",
        }
        assert "link_outside.png" in find_images(root, follow_symlinks=True)[0]

    def test_file_names_that_are_not_utf8_stay_strict_json(self, tmp_path):
        root = tmp_path / "images"
        root.mkdir()
        name = os.fsdecode(b"caf\xe9.png")  # Latin-1: not UTF-8, decoded with a lone surrogate
        Image.fromarray(np.zeros((20, 20), np.uint8)).save(os.path.join(root, name))
        extract_dataset(root, tmp_path / "out", num_workers=0, trainer_options=CPU)
        raw = (tmp_path / "out" / "manifest.json").read_bytes()
        raw.decode("utf-8")  # strict UTF-8, and no escaped lone surrogates either
        assert b"\\udc" not in raw and "caf\\\\xe9.png" in raw.decode()
        assert list(sf.open_descriptors(tmp_path / "out")) == ["caf\\xe9.png"]

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["--shard-size", "-1"], "argument --shard-size: must be a positive integer, got -1"),
            (["--shard-size", "0"], "argument --shard-size: must be a positive integer, got 0"),
            (["--batch-size", "0"], "argument --batch-size: must be a positive integer, got 0"),
            (["--batch-size", "-1"], "argument --batch-size: must be a positive integer, got -1"),
            (["--devices", "0"], "argument --devices: must be a positive integer, got 0"),
            (["--devices", "-1"], "argument --devices: must be a positive integer, got -1"),
            (["--workers", "-1"], "argument --workers: must be a non-negative integer, got -1"),
            (["--device", "cpu"], "unrecognized arguments: --device cpu"),
            (["--accelerator", "tpu"], "argument --accelerator: invalid choice: 'tpu'"),
        ],
    )
    def test_options_are_checked_before_anything_is_written(self, folder, tmp_path, capsys, argv, expected):
        output = tmp_path / "out"
        with pytest.raises(SystemExit) as stop:
            main(["extract-dataset", str(folder), "-o", str(output), *argv])
        assert stop.value.code == 2 and expected in capsys.readouterr().err
        assert not output.exists()

    def test_missing_input_and_gpu_without_a_gpu(self, tmp_path, capsys):
        output = tmp_path / "out"
        assert main(["extract-dataset", str(tmp_path / "nothing"), "-o", str(output)]) == 2
        assert "nothing: no such folder" in capsys.readouterr().err and not output.exists()
        if not torch.cuda.is_available():
            assert main(["extract-dataset", str(tmp_path), "-o", str(output), "--accelerator", "gpu"]) == 2
            assert "no CUDA GPU is available" in capsys.readouterr().err and not output.exists()
        (tmp_path / "empty").mkdir()
        with pytest.raises(ExtractionError, match="no image files found"):
            extract_dataset(tmp_path / "empty", output)
        assert not (output / "manifest.json").exists()
