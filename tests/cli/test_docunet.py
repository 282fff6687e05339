"""``siftflow-nn docunet``: a benchmark's whole table over folders, results that cannot be silently wrong."""

import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from siftflow_nn.cli import main
from siftflow_nn.metrics import docunet_metrics, ms_ssim_docunet, runner
from siftflow_nn.metrics.ocr import TesseractNotFoundError
from siftflow_nn.synthetic import document_pair, write_document_benchmark

ROOT = Path(__file__).parents[2]
BENCH = ROOT / "tests" / "data" / "docunet_bench"
REFS = json.loads((BENCH / "refs.json").read_text())


@pytest.fixture
def benchmark(tmp_path):
    """One scan and its two unwarped photos, as the original names them."""
    return write_document_benchmark(tmp_path / "bench", scans=1, height=64, width=48)


@pytest.fixture
def fake_scores(monkeypatch):
    """The image metrics replaced by numbers made from the pair's names (the folder logic is under
    test); the files are still read as the real scoring reads them."""
    asked, real = [], runner.ImageJob._scores

    def scores(job):
        for path in (job.pair.result, job.pair.scan):
            if not path.is_file() or path.read_bytes().startswith(b"not"):
                return real(job)  # the real read errors
        asked.append(job.pair.key)
        index = job.pair.number or 1
        return (0.5 + index / 10, float(index), index / 2, index / 4)

    monkeypatch.setattr(runner.ImageJob, "_scores", scores)
    return asked


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("siftflow-nn: error:")]


def _docunet(*argv) -> int:
    return main(["docunet", *map(str, argv)])


def test_scores_means_the_papers_table_figures_and_report(benchmark, tmp_path, capsys):
    rec_dir, scan_dir = benchmark
    results, figures, report = tmp_path / "scores.csv", tmp_path / "figures", tmp_path / "report.md"
    assert (
        _docunet(rec_dir, scan_dir, "--csv", results, "--device", "cpu", "--figures", figures, "--report", report) == 0
    )
    out = capsys.readouterr().out.splitlines()
    expected = docunet_metrics([rec_dir / f"1_{m} copy_rec.png" for m in (1, 2)], [scan_dir / "1.png"] * 2)
    assert out[0] == ("layout: DocUNet (results '{k}_{m} copy_rec.png', scans '{k}.png'): 1 of its 65 scans, 2 pairs "
                      "expected (the whole benchmark has 130), 2 found")  # fmt: skip
    rows = _rows(results)
    assert [(row["result"], row["scan"], row["photo"], row["ed"]) for row in rows] == [
        ("1_1 copy_rec.png", "1.png", "", ""),
        ("1_2 copy_rec.png", "1.png", "", ""),
    ]
    for column, values in zip(("ms_ssim", "ld", "li_d", "ad"), expected):
        assert [float(row[column]) for row in rows] == values.tolist()  # written in full precision
    assert out[1].startswith("1_1 copy_rec.png") and f"LD {float(expected.local_distortion[0]):.4f}" in out[1]
    means = [float(values.mean()) for values in expected]
    assert out[3] == (f"mean over 2 of 2 pairs: MS-SSIM {means[0]:.6f}  LD {means[1]:.4f}  Li-D {means[2]:.4f}  "
                      f"AD {means[3]:.4f}")  # fmt: skip
    assert [cell.strip() for cell in out[-2].split("|")] == ["", "MS-SSIM", "LD", "Li-D", "AD", "ED", "CER", ""]
    assert out[-1].split("|")[1:5] == [f" {means[0]:.4f}  ", f" {means[1]:.2f} ", f" {means[2]:.2f} ",
                                       f" {means[3]:.3f} "]  # fmt: skip
    assert sorted(path.name for path in figures.iterdir()) == ["1_1 copy_rec.png", "1_2 copy_rec.png", "summary.png"]
    assert Image.open(figures / "1_1 copy_rec.png").size == Image.open(figures / "1_2 copy_rec.png").size
    text = report.read_text()
    assert text.startswith("# DocUNet benchmark\n\n- layout: DocUNet") and "| 1_2 copy_rec.png | 1.png |" in text


def test_the_shared_benchmark_as_the_original_scripts_score_it(tmp_path, capsys):
    """Every column of tests/data/docunet_bench against the original code's (MATLAB's algorithms
    in Octave, UVDoc's OCR script with Tesseract 5.3.0), OCR beside the image metrics on --jobs 2."""
    results, report = tmp_path / "scores.csv", tmp_path / "report.md"
    status = _docunet(BENCH / "rec", BENCH / "scan", "--ocr", "uvdoc", "--subset", "all", "--jobs", "2",
                      "--csv", results, "--report", report)  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    rows = {row["result"]: row for row in _rows(results)}
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split()[1]
    for pair in REFS["pairs"]:
        row = rows[pair["rec"]]
        assert float(row["ms_ssim"]) == pytest.approx(pair["ms_ssim"], abs=1e-4)
        for column in ("ld", "li_d", "ad"):
            assert float(row[column]) == pytest.approx(pair[column], rel=0.01), column
        assert row["photo"] == pair["photo"] and len(row["photo_sha256"]) == 64
        assert abs(float(row["ed"]) - pair["uvdoc_ed"]) <= 1, f"Tesseract {version} (references: 5.3.0)"
        assert float(row["cer"]) == pytest.approx(pair["uvdoc_cer"], abs=1e-3), f"Tesseract {version}"
    assert f"(uvdoc protocol, Tesseract {version})" in captured.out
    assert re.search(r"image metrics: [\d.]+ s of work for 4 pairs; OCR: [\d.]+ s for 6 images; [\d.]+ s in all on "
                     r"2 jobs", captured.err)  # fmt: skip
    text = report.read_text()
    assert text.startswith("# DocUNet benchmark\n") and "| 1_1 copy_rec.png | 1.png |" in text


def test_uvdocs_second_resize_of_the_scan(tmp_path, capsys):
    """UVDoc's evalScript.m scores each scan's second photo against the scan resized twice; here
    what it changes on tests/data/docunet_bench's scan 2 (900 x 700, resized to 878 x 683, then by
    0.99894 again; scan 1's first resize gives 598400 pixels exactly, and its second changes
    nothing), and a resume that refuses rows made the other way."""
    rec_dir, scan_dir = tmp_path / "rec", tmp_path / "scan"
    for folder, names in ((rec_dir, ["2_1 copy_rec.png", "2_2 copy_rec.png"]), (scan_dir, ["2.png"])):
        folder.mkdir()
        for name in names:
            shutil.copy(BENCH / folder.name / name, folder / name)
    results = tmp_path / "scores.csv"
    assert _docunet(rec_dir, scan_dir, "--csv", results) == 0
    once = {row["result"]: row for row in _rows(results)}
    assert _docunet(rec_dir, scan_dir, "--csv", results, "--scan-resize", "uvdoc") == 2
    assert "1 of its rows were computed otherwise" in _errors(capsys.readouterr().err)[0]
    assert _docunet(rec_dir, scan_dir, "--csv", results, "--scan-resize", "uvdoc", "--overwrite") == 0
    twice = {row["result"]: row for row in _rows(results)}
    assert twice["2_1 copy_rec.png"] == once["2_1 copy_rec.png"]  # kept, not scored again
    assert twice["2_2 copy_rec.png"]["settings"].endswith("scan_resizes=2")
    scores = [[float(rows["2_2 copy_rec.png"][name]) for name in ("ms_ssim", "ld", "li_d")] for rows in (once, twice)]
    assert [after / before - 1 for before, after in zip(*scores)] == pytest.approx([-0.0193, 0.0534, 0.0114], abs=2e-3)


def test_a_missing_second_photo_is_reported(benchmark, fake_scores, capsys):
    """Issue 22, 4.2: ``rm "rec/2_2 copy_rec.png"`` gave "mean over 3 of 3 pairs", exit 0."""
    rec_dir, scan_dir = write_document_benchmark(benchmark[0].parent, scans=2, height=64, width=48)
    (rec_dir / "2_2 copy_rec.png").unlink()
    assert _docunet(rec_dir, scan_dir) == 1
    captured = capsys.readouterr()
    assert _errors(captured.err) == [
        f"siftflow-nn: error: {rec_dir / '2_2 copy_rec.png'}: missing (an expected result of the scan 2.png)"
    ]
    assert "4 pairs expected (the whole benchmark has 130), 3 found" in captured.out
    assert "mean over 3 of 4 pairs" in captured.out


def test_stray_images_and_one_folder_for_both(benchmark, fake_scores, capsys):
    """Issue 4.3: REC_DIR == SCAN_DIR or a thumbnail in SCAN_DIR gave "4 failed", exit 1."""
    rec_dir, scan_dir = benchmark
    shutil.copy(scan_dir / "1.png", rec_dir / "1.png")
    shutil.copy(scan_dir / "1.png", rec_dir / "thumbnail.png")
    assert _docunet(rec_dir, rec_dir) == 0
    captured = capsys.readouterr()
    assert _errors(captured.err) == []
    assert "ignored: 1 images the layout does not name (thumbnail.png)" in captured.err
    assert fake_scores == ["1_1 copy_rec.png", "1_2 copy_rec.png"]


def test_another_methods_folder_is_not_taken_for_the_first(benchmark, tmp_path, fake_scores, capsys):
    """Issue 4.1: method B's folder scored with method A's CSV printed A's means for B, exit 0."""
    rec_dir, scan_dir = benchmark
    other = tmp_path / "method_b"
    shutil.copytree(rec_dir, other)
    write_document_benchmark(tmp_path / "b", scans=1, height=64, width=48, seed=7)
    shutil.copy(tmp_path / "b" / "rec" / "1_2 copy_rec.png", other / "1_2 copy_rec.png")
    results = tmp_path / "scores.csv"
    assert _docunet(rec_dir, scan_dir, "--csv", results) == 0
    capsys.readouterr()
    assert _docunet(other, scan_dir, "--csv", results) == 2
    (error,) = _errors(capsys.readouterr().err)
    expected = (
        r"siftflow-nn: error: argument --csv: .*scores.csv: 1 of its rows were computed otherwise than this run's "
        r"pairs would be \(first: 1_2 copy_rec.png: the result file's contents differ\); give another --csv file, "
        r"or --overwrite to score those pairs again"
    )
    assert re.fullmatch(expected, error)
    fake_scores.clear()
    assert _docunet(other, scan_dir, "--csv", results, "--overwrite") == 0
    assert fake_scores == ["1_2 copy_rec.png"]


def test_an_interrupted_run_resumes(benchmark, tmp_path, fake_scores, capsys):
    rec_dir, scan_dir = write_document_benchmark(benchmark[0].parent, scans=3, height=64, width=48)
    results = tmp_path / "scores.csv"
    assert _docunet(rec_dir, scan_dir, "--csv", results) == 0
    first = capsys.readouterr().out.splitlines()[-4]
    text = results.read_text().splitlines()
    results.write_text("\n".join(text[:-2]) + "\n" + text[-1][:-30])  # the last row cut short, the one before lost
    fake_scores.clear()
    assert _docunet(rec_dir, scan_dir, "--csv", results) == 0
    captured = capsys.readouterr()
    assert fake_scores == ["3_1 copy_rec.png", "3_2 copy_rec.png"]
    assert "4 of 6 pairs already scored" in captured.err and "its last row was cut short" in captured.err
    assert captured.out.splitlines()[-4] == first  # the means cover every pair again
    assert len(_rows(results)) == 6
    fake_scores.clear()
    assert _docunet(rec_dir, scan_dir, "--csv", results) == 0
    assert fake_scores == []


def test_names_that_are_not_utf8(benchmark, tmp_path, fake_scores, capsys):
    """Issue 4.5: a name that is not UTF-8 crashed the run and every resume (UnicodeEncodeError)."""
    rec_dir, scan_dir = benchmark
    odd = b"caf\xe9_1 copy_rec.png".decode("utf-8", "surrogateescape")
    shutil.copy(rec_dir / "1_1 copy_rec.png", rec_dir / odd)
    assert _docunet(rec_dir, scan_dir, "--csv", tmp_path / "a.csv") == 0
    assert "ignored: 1 images the layout does not name (caf\\xe9_1 copy_rec.png)" in capsys.readouterr().err
    listed = tmp_path / "pairs.csv"
    listed.write_bytes(b"result,scan\nbench/rec/caf\xe9_1 copy_rec.png,bench/scan/1.png\n")
    for _ in range(2):  # written, then resumed
        assert _docunet("--pairs", listed, "--csv", tmp_path / "b.csv") == 0
    assert [row["result"] for row in _rows(tmp_path / "b.csv")] == ["bench/rec/caf\\xe9_1 copy_rec.png"]
    assert "1 of 1 pairs already scored" in capsys.readouterr().err


def test_photos_64_warned_and_turned_back_when_asked(tmp_path, capsys):
    """DocUNet's 64_1 and 64_2 are rotated by 180 degrees against their scan: scored as they are
    (with a warning), or turned back with --rotate-64."""
    rec_dir, scan_dir = tmp_path / "rec", tmp_path / "scan"
    rec_dir.mkdir()
    scan_dir.mkdir()
    photo, scan, _ = document_pair(96, 72, 2.0, seed=3)
    Image.fromarray((scan[0] * 255).round().byte().numpy()).save(scan_dir / "64.png")
    turned = (photo[0].flip(0, 1) * 255).round().byte().numpy()
    for m in (1, 2):
        Image.fromarray(turned).save(rec_dir / f"64_{m} copy_rec.png")
    assert _docunet(rec_dir, scan_dir, "--csv", tmp_path / "as_is.csv") == 0
    assert (
        "64_1 copy_rec.png and 64_2 copy_rec.png: DocUNet's photos 64_1 and 64_2 are rotated" in capsys.readouterr().err
    )
    assert _docunet(rec_dir, scan_dir, "--csv", tmp_path / "turned.csv", "--rotate-64") == 0
    assert "rotated by 180" not in capsys.readouterr().err
    as_is, back = _rows(tmp_path / "as_is.csv")[0], _rows(tmp_path / "turned.csv")[0]
    assert float(back["ms_ssim"]) > float(as_is["ms_ssim"]) + 0.1 and float(back["ld"]) < float(as_is["ld"])
    assert back["settings"].endswith("rotated=180")


def test_16_bit_images_are_scored_as_matlab_reads_them(tmp_path):
    """Issue 4.4: 16-bit PNGs were scored at 8 bits; MATLAB's imread gives uint16 and eval.m
    computes in uint16. A 16-bit pair (a gray result, an RGB scan, which Pillow alone reads at 8
    bits) scores as docunet_metrics scores the uint16 images."""
    photo, scan, _ = document_pair(96, 72, 3.0, seed=5)
    result16 = (photo[0].double() * 65535).round().to(torch.int32).numpy().astype(np.uint16)
    scan16 = (scan[0].double() * 65535).round().to(torch.int32).numpy().astype(np.uint16)
    scan16 = np.stack([scan16, scan16, (scan16 // 2).astype(np.uint16)], axis=-1)
    Image.fromarray(result16).save(tmp_path / "result.png")
    _write_rgb16_png(tmp_path / "scan.png", scan16)
    (tmp_path / "pairs.csv").write_text("result,scan\nresult.png,scan.png\n")
    assert _docunet("--pairs", tmp_path / "pairs.csv", "--csv", tmp_path / "scores.csv") == 0
    row = _rows(tmp_path / "scores.csv")[0]
    expected = docunet_metrics(torch.from_numpy(result16)[None], torch.from_numpy(scan16).permute(2, 0, 1))
    assert [float(row[name]) for name in ("ms_ssim", "ld", "li_d", "ad")] == [float(value[0]) for value in expected]
    eight_bit = ms_ssim_docunet(tmp_path / "result.png", tmp_path / "scan.png")  # what the 8-bit reading gave
    assert float(row["ms_ssim"]) != pytest.approx(float(eight_bit[0]), abs=1e-4)


def _write_rgb16_png(path, array):
    """A 16-bit RGB PNG (Pillow writes none): the chunks by hand."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = array.shape
    rows = b"".join(b"\0" + array[row].astype(">u2").tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def test_bad_pairs_are_named_and_the_rest_go_on(benchmark, fake_scores, capsys):
    rec_dir, scan_dir = benchmark
    shutil.copy(rec_dir / "1_1 copy_rec.png", rec_dir / "2_1 copy_rec.png")  # no scan 2
    (rec_dir / "3_1 copy_rec.png").write_text("not an image")
    (rec_dir / "3_2 copy_rec.png").write_text("not an image either")
    shutil.copy(scan_dir / "1.png", scan_dir / "3.png")
    status = _docunet(rec_dir, scan_dir)
    captured = capsys.readouterr()
    assert status == 1
    errors = _errors(captured.err)
    assert any("2_1 copy_rec.png: its scan" in line and "2.png is missing" in line for line in errors)
    assert any("3_1 copy_rec.png: not a readable image" in line for line in errors)
    assert len(errors) == 4  # 2_1, 2_2 (no scan), 3_1, 3_2 (not images)
    assert "mean over 2 of 6 pairs" in captured.out
    assert fake_scores == ["1_1 copy_rec.png", "1_2 copy_rec.png"]


def test_when_every_pair_fails(benchmark, capsys):
    """Issue 4.8: when every pair failed at once the progress line read "40262.9 pairs/s, failed"."""
    rec_dir, scan_dir = benchmark
    for m in (1, 2):
        (rec_dir / f"1_{m} copy_rec.png").write_text("not an image")
    assert _docunet(rec_dir, scan_dir) == 1
    captured = capsys.readouterr()
    assert "pairs/s" not in captured.err and len(_errors(captured.err)) == 2
    assert "no pair scored (of 2)" in captured.out


def test_interrupted_with_one_line_and_the_rows_kept(benchmark, tmp_path, monkeypatch, capsys):
    """Issue 4.8: Ctrl-C printed a 47-line traceback."""
    rec_dir, scan_dir = benchmark
    calls = []

    def scores(job):
        calls.append(job.pair.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return (0.9, 1.0, 0.5, 0.1)

    monkeypatch.setattr(runner.ImageJob, "_scores", scores)
    results = tmp_path / "scores.csv"
    assert _docunet(rec_dir, scan_dir, "--csv", results) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"siftflow-nn: interrupted: the 1 rows scored are kept in {results}: run the same command "
                       "again to resume")  # fmt: skip
    assert [row["result"] for row in _rows(results)] == ["1_1 copy_rec.png"]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that does not come counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def long_run(tmp_path):
    """The command on 12 pairs with --jobs 2, as a process of its own, once its worker scores: it
    holds jobs from then on (its memory passes 380 MiB only when it has loaded the kernels of a
    pair: 300 MiB after its imports, 430 MiB after a pair)."""
    rec_dir, scan_dir = write_document_benchmark(tmp_path / "bench", scans=6, height=96, width=72)
    results = tmp_path / "scores.csv"
    command = [sys.executable, "-m", "siftflow_nn", "docunet", str(rec_dir), str(scan_dir), "--jobs", "2", "--csv",
               str(results)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        worker = None
        while time.monotonic() < deadline and process.poll() is None:
            started = descendants(process.pid)
            workers = [pid for pid in started if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            if workers and _resident_mib(workers[0]) > 380:
                worker = workers[0]
                break
            time.sleep(0.05)
        assert worker is not None, process.stderr.read()
        yield process, worker, started, results
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_workers_end_with_the_command_and_the_rows_are_kept(long_run, how):
    """Issue 4.6: SIGTERM or SIGKILL to the main process under --jobs 2 left the worker (460 MB)
    and the resource tracker alive for good. SIGTERM ends the run as Ctrl-C does, in one line."""
    process, _, started, results = long_run
    assert len(started) >= 2  # the worker and the resource tracker
    process.send_signal(how)
    assert process.wait(60) == (143 if how == signal.SIGTERM else -signal.SIGKILL)
    if how == signal.SIGTERM:
        last = process.stderr.read().strip().splitlines()[-1]
        expected = (
            r"siftflow-nn: terminated \(SIGTERM\): the \d+ rows scored are kept in .*scores.csv: run the same "
            r"command again to resume"
        )
        assert re.fullmatch(expected, last)
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in started if alive(pid)] == []
    assert len(_rows(results)) >= 1


def test_a_worker_killed_ends_the_run_in_one_line(long_run):
    """Issue 4.6: a worker killed by the OOM killer ended the run with a BrokenProcessPool traceback."""
    process, worker, _, results = long_run
    os.kill(worker, signal.SIGKILL)
    status = process.wait(60)
    err = process.stderr.read().strip().splitlines()
    assert status == 2, err
    expected = (
        rf"siftflow-nn: error: a worker process \(pid {worker}\) was killed by SIGKILL \(out of memory\?\) while "
        r"working on \d+_\d copy_rec.png; the \d+ rows scored are kept in .*scores.csv: run again to resume"
    )
    assert re.fullmatch(expected, err[-1])
    assert len(_rows(results)) >= 1


def test_without_tesseract_ocr_is_one_line_before_any_work(benchmark, monkeypatch, fake_scores, capsys):
    import siftflow_nn.metrics.ocr as ocr

    def missing():
        raise TesseractNotFoundError("ED and CER need Tesseract OCR, but the command 'tesseract' was not found: ...")

    monkeypatch.setattr(ocr, "tesseract_version", missing)
    assert _docunet(*benchmark, "--ocr", "doctr") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("siftflow-nn: error: argument --ocr: ED and CER need Tesseract OCR") and "\n" not in err
    assert fake_scores == []
    assert _docunet(*benchmark) == 0  # the image metrics need no Tesseract


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{rec}", "{missing}"], "argument SCAN_DIR: .* is not a folder"),
        (["{scan}", "{scan}"], "hold no results and scans named as a benchmark names them"),
        (["{rec}", "{scan}", "--csv", "{rec}/out.txt"], "unsupported extension .txt"),
        (["{rec}", "{scan}", "--csv", "{foreign}"], "is not a results file of this command"),
        (
            ["{rec}", "{scan}", "--csv", "/proc/x.csv"],
            r"/proc/x.csv: (no file can be created in /proc|the folder /proc is not writable)",
        ),
        (
            ["{rec}", "{scan}", "--max-pixels", "1000"],
            r"1_1 copy_rec.png: 48 x 64 = 3072 pixels, over the budget of "
            r"1000 \(--max-pixels\): scoring it needs about 0.1 GiB of "
            r"memory; give --max-pixels 3072 to score it anyway",
        ),
        (["{rec}", "{scan}", "--rotate-64", "--layout", "dir300"], "DIR300 has no rotated photos"),
        (["{rec}", "{scan}", "--results", "{{k}}.png"], "--results: give --layout too"),
        (["{rec}", "{scan}", "--subset", "setting1"], "--subset: chooses the images OCR reads: give --ocr too"),
        (["{rec}", "{scan}", "--ocr", "doctr", "--subset", "66"], "66 is not a scan of DocUNet"),
        (
            ["{rec}", "{scan}", "--ocr", "uvdoc", "--photos", "{missing}"],
            "uvdoc resizes each result to its distorted photo's size: no folder",
        ),
        (["--pairs", "{foreign}", "{rec}"], "--pairs: lists the pairs itself"),
        ([], "REC_DIR and SCAN_DIR are required"),
    ],
)
def test_usage_errors(benchmark, tmp_path, fake_scores, capsys, argv, message):
    rec_dir, scan_dir = benchmark
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    names = dict(rec=rec_dir, scan=scan_dir, missing=tmp_path / "nowhere", foreign=foreign)
    assert _docunet(*(part.format(**names) for part in argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("siftflow-nn: error:") and "\n" not in err
    assert re.search(message, err), err
    assert foreign.read_text() == "a,b\n1,2\n"  # a file that is not ours is left alone
    assert fake_scores == []  # refused before any work
