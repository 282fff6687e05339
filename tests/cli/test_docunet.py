"""``siftflow-nn docunet``: the benchmark over folders, resumable, going on past bad pairs."""

import csv
import re

import pytest
import torch

from siftflow_nn.cli import docunet as command
from siftflow_nn.cli import main
from siftflow_nn.io import read_image
from siftflow_nn.metrics import docunet_metrics
from siftflow_nn.synthetic import write_document_benchmark


@pytest.fixture
def benchmark(tmp_path):
    """One scan and its two unwarped photos, as the original names them."""
    rec_dir, scan_dir = write_document_benchmark(tmp_path / "bench", scans=1, height=64, width=48)
    return rec_dir, scan_dir


@pytest.fixture
def fake_scores(monkeypatch):
    """Scoring replaced by a record of the pairs asked for (the folder logic is under test)."""
    asked, real_score = [], command._score

    def score(pair, scan_dir, device):
        if pair.scan is None:
            return real_score(pair, scan_dir, device)  # the real missing-scan error
        for path in (pair.photo, pair.scan):
            read_image(path, uint8=True)  # the real read errors
        asked.append(pair.photo.name)
        index = int(pair.photo.name.split("_")[1].split()[0])
        return command._Scores(0.5 + index / 10, float(index), index / 2)

    monkeypatch.setattr(command, "_score", score)
    return asked


def _rows(path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_scores_and_means_are_the_librarys(benchmark, tmp_path, capsys):
    rec_dir, scan_dir = benchmark
    results = tmp_path / "scores.csv"
    assert main(["docunet", str(rec_dir), str(scan_dir), "--csv", str(results), "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = docunet_metrics(
        [rec_dir / "1_1 copy_rec.png", rec_dir / "1_2 copy_rec.png"], [scan_dir / "1.png", scan_dir / "1.png"]
    )
    rows = _rows(results)
    assert rows[0] == ["unwarped", "scan", "ms_ssim", "ld", "li_d"]
    assert [row[:2] for row in rows[1:]] == [["1_1 copy_rec.png", "1.png"], ["1_2 copy_rec.png", "1.png"]]
    for column, values in zip((2, 3, 4), expected):
        assert [float(row[column]) for row in rows[1:]] == values.tolist()  # written in full precision
    assert out[0].startswith("1_1 copy_rec.png") and f"LD {float(expected.local_distortion[0]):.4f}" in out[0]
    means = [float(values.mean()) for values in expected]
    assert out[-1] == f"mean over 2 of 2 pairs: MS-SSIM {means[0]:.6f}  LD {means[1]:.4f}  Li-D {means[2]:.4f}"


def test_jobs_score_every_pair_as_one_process_does(benchmark, tmp_path, capsys):
    """``--jobs 3``: this process and two spawned workers share the pairs; the same scores, a
    missing scan reported, the rest scored; torch's thread count restored afterwards."""
    rec_dir, scan_dir = benchmark
    for index in (2, 3):
        (scan_dir / f"{index}.png").write_bytes((scan_dir / "1.png").read_bytes())
        for photo in (1, 2):
            source = rec_dir / f"1_{photo} copy_rec.png"
            (rec_dir / f"{index}_{photo} copy_rec.png").write_bytes(source.read_bytes())
    (rec_dir / "4_1 copy_rec.png").write_bytes((rec_dir / "1_1 copy_rec.png").read_bytes())  # no scan 4
    threads = torch.get_num_threads()
    one, three = tmp_path / "one.csv", tmp_path / "three.csv"
    assert main(["docunet", str(rec_dir), str(scan_dir), "--csv", str(one)]) == 1
    assert main(["docunet", str(rec_dir), str(scan_dir), "--csv", str(three), "--jobs", "3"]) == 1
    assert torch.get_num_threads() == threads
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("siftflow-nn: error:")]
    assert len(errors) == 2 and all("4_1 copy_rec.png: its scan" in line for line in errors)
    assert len(_rows(one)) == 7 and sorted(_rows(three)) == sorted(_rows(one))  # as they finish


def test_an_interrupted_run_resumes(benchmark, tmp_path, fake_scores, capsys):
    rec_dir, scan_dir = benchmark
    write_document_benchmark(rec_dir.parent, scans=3, height=64, width=48)  # 3 scans, 6 photos
    results = tmp_path / "scores.csv"
    assert main(["docunet", str(rec_dir), str(scan_dir), "--csv", str(results)]) == 0
    assert len(fake_scores) == 6
    first = capsys.readouterr().out.splitlines()[-1]
    # an interruption: the last row cut short, the one before lost
    text = results.read_text().splitlines()
    results.write_text("\n".join(text[:-2]) + "\n" + text[-1][:12])
    fake_scores.clear()
    assert main(["docunet", str(rec_dir), str(scan_dir), "--csv", str(results)]) == 0
    captured = capsys.readouterr()
    assert fake_scores == ["3_1 copy_rec.png", "3_2 copy_rec.png"]
    assert "4 of 6 pairs already scored" in captured.err
    assert captured.out.splitlines()[-1] == first  # the means cover every pair again
    assert len(_rows(results)) == 7
    fake_scores.clear()
    assert main(["docunet", str(rec_dir), str(scan_dir), "--csv", str(results)]) == 0
    assert fake_scores == []


def test_bad_pairs_are_named_and_the_rest_go_on(benchmark, tmp_path, fake_scores, capsys):
    rec_dir, scan_dir = benchmark
    (rec_dir / "2_1 copy_rec.png").write_bytes((rec_dir / "1_1 copy_rec.png").read_bytes())  # no scan 2
    (rec_dir / "3_1 copy_rec.png").write_text("not an image")
    (scan_dir / "3.png").write_bytes((scan_dir / "1.png").read_bytes())
    (scan_dir / "4.png").write_bytes((scan_dir / "1.png").read_bytes())  # no photo of scan 4
    status = main(["docunet", str(rec_dir), str(scan_dir)])
    captured = capsys.readouterr()
    assert status == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("siftflow-nn: error:")]
    assert any("2_1 copy_rec.png: its scan" in line and "2.png is missing" in line for line in errors)
    assert any("4.png: a scan without unwarped photos" in line for line in errors)
    assert any("3_1 copy_rec.png: not a readable image" in line for line in errors)
    assert len(errors) == 3
    assert "mean over 2 of 5 pairs" in captured.out.splitlines()[-1]
    assert fake_scores == ["1_1 copy_rec.png", "1_2 copy_rec.png"]


def test_unreadable_images_are_named(benchmark, capsys):
    rec_dir, scan_dir = benchmark
    (rec_dir / "1_2 copy_rec.png").write_text("not an image")
    (rec_dir / "1_1 copy_rec.png").unlink()
    assert main(["docunet", str(rec_dir), str(scan_dir)]) == 1
    captured = capsys.readouterr()
    assert "1_2 copy_rec.png: not a readable image" in captured.err
    assert captured.out.strip() == "no pair scored (of 1)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{rec}", "{missing}"], "argument SCAN_DIR: .* is not a folder"),
        (["{scan}", "{scan}"], "holds no unwarped photos named like '1_1 copy_rec.png'"),
        (["{rec}", "{scan}", "--csv", "{rec}/out.txt"], "unsupported extension .txt"),
        (["{rec}", "{scan}", "--csv", "{foreign}"], "is not a results file of this command"),
    ],
)
def test_usage_errors(benchmark, tmp_path, capsys, argv, message):
    rec_dir, scan_dir = benchmark
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n")
    names = dict(rec=rec_dir, scan=scan_dir, missing=tmp_path / "nowhere", foreign=foreign)
    assert main(["docunet", *(part.format(**names) for part in argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("siftflow-nn: error:") and "\n" not in err
    assert re.search(message, err), err
    assert foreign.read_text() == "a,b\n1,2\n"  # a file that is not ours is left alone
