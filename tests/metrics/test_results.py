"""The results file: rows say what they were computed from; resume only what matches; never half a file."""

import builtins
import errno
import os

import pytest

from siftflow_nn.io import OutputError, printable_name
from siftflow_nn.metrics.results import COLUMNS, ResultsError, ResultsFile, Row, Source, file_sha256

SETTINGS = "layout=docunet; device=cpu; metrics=ms_ssim,ld,li_d,ad"


@pytest.fixture
def pairs(tmp_path):
    """Two results of one scan, and their sources."""
    for name, content in (("1_1 copy_rec.png", b"first"), ("1_2 copy_rec.png", b"second"), ("1.png", b"scan")):
        (tmp_path / name).write_bytes(content)
    return [_source(tmp_path, name) for name in ("1_1 copy_rec.png", "1_2 copy_rec.png")]


def _source(folder, name, scan="1.png", settings=SETTINGS):
    return Source(printable_name(name), scan, "", settings, (folder / name, folder / scan, None))


def _row(source, li_d=1.1583333333333334):
    result, scan, _ = source.files
    return Row(source.key, source.scan, "", 0.84, 1.733, li_d, 0.146, None, None, file_sha256(result),
               file_sha256(scan), "", source.settings)  # fmt: skip


def _write(path, sources):
    file = ResultsFile(path, sources)
    for source in sources:
        file.append(_row(source))
    file.close()


def test_rows_are_written_in_full_and_resumed(tmp_path, pairs):
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 3
    assert ",1.1583333333333334," in lines[1]  # every digit: means from the file equal the run's
    again = ResultsFile(path, pairs)
    assert again.todo == [] and set(again.done) == {"1_1 copy_rec.png", "1_2 copy_rec.png"}
    assert again.done["1_1 copy_rec.png"] == _row(pairs[0])
    assert again.notes == []


def test_another_methods_results_of_the_same_names_are_refused(tmp_path, pairs):
    """Issue 22, 4.1: scoring method B's folder with method A's CSV printed A's means for B."""
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    (tmp_path / "1_2 copy_rec.png").write_bytes(b"method B's result")
    with pytest.raises(ResultsError, match=r"1 of its rows were computed otherwise .*1_2 copy_rec.png: the result "
                                           r"file's contents differ.*--overwrite"):  # fmt: skip
        ResultsFile(path, pairs)
    again = ResultsFile(path, pairs, overwrite=True)
    assert [source.key for source in again.todo] == ["1_2 copy_rec.png"]
    assert "1 rows dropped (--overwrite)" in again.notes[0]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(scan="2.png"), "scan '1.png' -> '2.png'"),
        (dict(settings=SETTINGS + ",ed,cer; ocr=doctr"), "settings '.*' -> '.*ocr=doctr'"),
    ],
)
def test_other_scans_or_settings_are_refused(tmp_path, pairs, change, message):
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    (tmp_path / "2.png").write_bytes(b"scan")
    changed = [source._replace(**change) for source in pairs]
    with pytest.raises(ResultsError, match=message):
        ResultsFile(path, changed)


@pytest.mark.parametrize("keep", [-1, -3, -20, -70, -100, -130])
def test_a_row_cut_short_is_scored_again(tmp_path, pairs, keep):
    """Issue 4.7: a row cut inside its last number was accepted (mean Li-D 1.1495 instead of 1.1583):
    wherever a row is cut (a score, a hash, the settings), it is dropped and its pair redone."""
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    text = path.read_bytes()
    path.write_bytes(text[:keep])
    again = ResultsFile(path, pairs)
    assert [source.key for source in again.todo] == ["1_2 copy_rec.png"]
    assert "last row was cut short" in again.notes[0]
    again.append(_row(pairs[1]))
    again.close()
    assert path.read_bytes() == text  # rewritten whole, the cut row dropped


def test_names_that_are_not_utf8_are_written_escaped(tmp_path):
    """Issue 4.5: a name that is not UTF-8 crashed the run and every resume (UnicodeEncodeError)."""
    name = b"caf\xe9_1 copy_rec.png".decode("utf-8", "surrogateescape")
    (tmp_path / name).write_bytes(b"result")
    (tmp_path / "1.png").write_bytes(b"scan")
    source = _source(tmp_path, name)
    path = tmp_path / "scores.csv"
    _write(path, [source])
    assert "caf\\xe9_1 copy_rec.png" in path.read_text(encoding="utf-8")
    assert ResultsFile(path, [source]).todo == []


def test_a_symbolic_link_is_written_through(tmp_path, pairs):
    """Issue 4.7: a symlinked --csv was replaced by a plain file (its target kept the old rows)."""
    target, link = tmp_path / "kept" / "scores.csv", tmp_path / "scores.csv"
    target.parent.mkdir()
    _write(target, pairs[:1])
    target.write_bytes(target.read_bytes()[:-5])  # a cut row, so that the file is rewritten
    link.symlink_to(target)
    file = ResultsFile(link, pairs)
    for source in file.todo:
        file.append(_row(source))
    file.close()
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 3


@pytest.fixture
def unwritable(monkeypatch):
    """Opening the given file for writing fails as on an immutable file (chattr +i, EPERM)."""
    paths, real_open, real_replace = [], builtins.open, os.replace

    def refuse(path):
        if os.path.realpath(path) in paths:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))

    def open_(file, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def replace(source, destination):
        refuse(destination)
        return real_replace(source, destination)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(os, "replace", replace)
    return paths


def test_an_immutable_file_is_one_line_and_only_when_written(tmp_path, pairs, unwritable):
    """Issue 4.7: an immutable CSV was a PermissionError traceback, even with nothing left to score."""
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    unwritable.append(str(path))
    finished = ResultsFile(path, pairs)
    finished.prepare()  # nothing to score: nothing is written, no error
    assert finished.todo == []
    (tmp_path / "1_3 copy_rec.png").write_bytes(b"third")
    more = ResultsFile(path, [*pairs, _source(tmp_path, "1_3 copy_rec.png")])
    with pytest.raises(OutputError, match=r"scores.csv: cannot be written \(Operation not permitted\); nothing"):
        more.prepare()
    path.write_bytes(path.read_bytes()[:-4])  # a cut row: the rewrite is refused the same way
    with pytest.raises(OutputError, match="Operation not permitted"):
        ResultsFile(path, pairs).prepare()


def test_a_folder_that_holds_no_new_files(pairs):
    """Issue 4.7: ``--csv /proc/x.csv`` said "the folder /proc does not exist"."""
    file = ResultsFile("/proc/x.csv", pairs)
    with pytest.raises(OutputError, match=r"/proc/x.csv: no file can be created in /proc"):
        file.prepare()


@pytest.mark.parametrize(
    "text, message",
    [
        ("unwarped,scan,ms_ssim,ld,li_d\n1_1 copy_rec.png,1.png,0.9,1,1\n", "an earlier version's"),
        ("a,b\n1,2\n", "its first line is not result,scan,photo"),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_files_that_are_not_ours_are_refused_and_left_alone(tmp_path, pairs, text, message):
    path = tmp_path / "scores.csv"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    with pytest.raises(ResultsError, match=message):
        ResultsFile(path, pairs)
    assert (path.read_bytes() if isinstance(text, bytes) else path.read_text()) == text


def test_an_edited_row_is_refused_unless_overwritten(tmp_path, pairs):
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace(",0.84,", ",zero,"), lines[2]]) + "\n")
    with pytest.raises(ResultsError, match="line 2 is not a row this command writes"):
        ResultsFile(path, pairs)
    assert [source.key for source in ResultsFile(path, pairs, overwrite=True).todo] == ["1_1 copy_rec.png"]


def test_rows_of_other_pairs_are_kept(tmp_path, pairs):
    path = tmp_path / "scores.csv"
    _write(path, pairs)
    file = ResultsFile(path, pairs[:1])
    assert file.todo == [] and "1 of its rows are not pairs of this run: kept" in file.notes[0]
