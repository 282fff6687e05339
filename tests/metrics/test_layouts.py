"""The benchmarks' layouts: what each expects of two folders, what it reports missing, what it ignores."""

import pytest

from siftflow_nn.metrics.layouts import LAYOUTS, LayoutError, detect_layout, find_pairs, read_pairs_list

DOCUNET = LAYOUTS["docunet"]


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


@pytest.fixture
def docunet(tmp_path):
    """Two DocUNet scans with both results, as DocTr names them."""
    rec = _touch(tmp_path / "rec", "1_1 copy_rec.png", "1_2 copy_rec.png", "2_1 copy_rec.png", "2_2 copy_rec.png")
    scan = _touch(tmp_path / "scan", "1.png", "2.png")
    return rec, scan


class TestDocUNet:
    def test_pairs_in_the_evaluation_scripts_order(self, docunet):
        rec, scan = docunet
        found = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan, rec.parent / "crop")
        assert [(pair.key, pair.scan.name, pair.index, pair.number) for pair in found.pairs] == [
            ("1_1 copy_rec.png", "1.png", 1, 1),
            ("1_2 copy_rec.png", "1.png", 1, 2),
            ("2_1 copy_rec.png", "2.png", 2, 1),
            ("2_2 copy_rec.png", "2.png", 2, 2),
        ]
        assert found.pairs[1].photo == rec.parent / "crop" / "1_2 copy.png"
        assert (found.scans, found.expected, found.missing, found.ignored) == (2, 4, [], [])
        assert "2 of its 65 scans, 4 pairs expected (the whole benchmark has 130), 4 found" in found.describe()

    def test_a_missing_second_result_is_reported(self, docunet):
        """Issue 22, 4.2: ``rm "rec/2_2 copy_rec.png"`` was "mean over 3 of 3 pairs", exit 0."""
        rec, scan = docunet
        (rec / "2_2 copy_rec.png").unlink()
        found = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan)
        assert [(pair.key, path) for pair, path in found.missing] == [("2_2 copy_rec.png", rec / "2_2 copy_rec.png")]
        assert found.expected == 4 and len(found.pairs) == 3

    def test_a_result_without_its_scan_is_reported_with_its_sibling(self, docunet):
        rec, scan = docunet
        _touch(rec, "3_1 copy_rec.png")
        found = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan)
        assert [(pair.key, path.name) for pair, path in found.missing] == [
            ("3_1 copy_rec.png", "3.png"),
            ("3_2 copy_rec.png", "3.png"),
        ]

    def test_stray_images_and_one_folder_for_both_are_not_failures(self, tmp_path):
        """Issue 4.3: REC_DIR == SCAN_DIR, a thumbnail, other images: ignored and counted, not failed."""
        folder = _touch(tmp_path / "both", "1.png", "1_1 copy_rec.png", "1_2 copy_rec.png", "thumbnail.png",
                        "1_1 copy_rec.jpg", "66.png", "01.png", "notes.txt")  # fmt: skip
        found = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", folder, folder)
        assert [pair.key for pair in found.pairs] == ["1_1 copy_rec.png", "1_2 copy_rec.png"]
        assert found.missing == []
        assert found.ignored == ["01.png", "1_1 copy_rec.jpg", "66.png", "thumbnail.png"]  # not notes.txt

    def test_names_with_a_newline_are_never_results(self, docunet):
        """Issue 4.9: ``a\\nb_1 copy_rec.png`` was ignored and ``5_1 copy_rec.png\\n`` accepted; both are
        now names the layout does not hold, ignored the same way."""
        rec, scan = docunet
        _touch(rec, "a\nb_1 copy_rec.png", "5_1 copy_rec.png\n")
        _touch(scan, "5.png\n")
        found = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan)
        assert [pair.key for pair in found.pairs] == [f"{k}_{m} copy_rec.png" for k in (1, 2) for m in (1, 2)]
        assert found.missing == [] and found.ignored == ["5.png\n", "5_1 copy_rec.png\n", "a\nb_1 copy_rec.png"]

    def test_photos_64_are_marked_only_when_asked(self, tmp_path):
        rec = _touch(tmp_path / "rec", "64_1 copy_rec.png", "64_2 copy_rec.png")
        scan = _touch(tmp_path / "scan", "64.png")
        plain = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan)
        turned = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan, rotate=True)
        assert [pair.rotated for pair in plain.pairs] == [False, False]
        assert [pair.rotated for pair in turned.pairs] == [True, True]

    def test_uvdoc_resizes_the_scan_again_for_a_later_photo(self, docunet):
        rec, scan = docunet
        (rec / "1_1 copy_rec.png").unlink()
        once = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan)
        uvdoc = find_pairs(DOCUNET, "{k}_{m} copy_rec.png", rec, scan, scan_resize="uvdoc")
        assert [pair.scan_resizes for pair in once.pairs] == [1, 1, 1]
        # evalScript.m resizes only inside `if isfile(...)`: 1_2 follows no scored photo
        assert [(pair.key, pair.scan_resizes) for pair in uvdoc.pairs] == [
            ("1_2 copy_rec.png", 1),
            ("2_1 copy_rec.png", 1),
            ("2_2 copy_rec.png", 2),
        ]

    @pytest.mark.parametrize("template", ["{k}_{m}.png", "{k}_{m} copy.png"])
    def test_other_methods_names(self, tmp_path, template):
        rec = _touch(tmp_path / "rec", *(template.format(k=1, m=m) for m in (1, 2)))
        scan = _touch(tmp_path / "scan", "1.png")
        assert detect_layout(rec, scan) == (DOCUNET, template)
        assert len(find_pairs(DOCUNET, template, rec, scan).pairs) == 2

    @pytest.mark.parametrize("template", ["{k}.png", "{m}_rec.png", "{k}_{m}/x.png", "{k}_{z}.png"])
    def test_templates_that_cannot_name_each_result_are_refused(self, docunet, template):
        with pytest.raises(LayoutError, match="results template"):
            find_pairs(DOCUNET, template, *docunet)


def test_dir300_and_uvdoc(tmp_path):
    rec = _touch(tmp_path / "dir300" / "rec", "1_rec.png", "300_rec.png", "301_rec.png")
    gt = _touch(tmp_path / "dir300" / "gt", "1.png", "2.png", "300.png")
    assert detect_layout(rec, gt) == (LAYOUTS["dir300"], "{k}_rec.png")
    found = find_pairs(LAYOUTS["dir300"], "{k}_rec.png", rec, gt)
    assert [pair.key for pair in found.pairs] == ["1_rec.png", "300_rec.png"]
    assert [path.name for _, path in found.missing] == ["2_rec.png"] and found.ignored == ["301_rec.png"]
    results = _touch(tmp_path / "uvdoc" / "uwp_texture", "00000.png", "00049.png")
    scans = _touch(tmp_path / "uvdoc" / "texture_sample", "00000.png", "00049.png", "00050.png")
    assert detect_layout(results, scans) == (LAYOUTS["uvdoc"], "{k:05d}.png")
    found = find_pairs(LAYOUTS["uvdoc"], "{k:05d}.png", results, scans, scans.parent / "warped_textures")
    assert [(pair.key, pair.index) for pair in found.pairs] == [("00000.png", 0), ("00049.png", 49)]
    assert found.pairs[0].photo == scans.parent / "warped_textures" / "00000.png"
    assert "2 of its 50 scans, 2 pairs expected (the whole benchmark has 50)" in found.describe()


def test_detection_never_guesses(tmp_path):
    scan = _touch(tmp_path / "scan", "1.png")
    empty = _touch(tmp_path / "empty", "thumbnail.png")
    with pytest.raises(LayoutError, match="no results and scans named as a benchmark names them"):
        detect_layout(empty, scan)
    both = _touch(tmp_path / "both", "1_1 copy_rec.png", "1_1 copy.png")
    with pytest.raises(LayoutError, match=r"several layouts.*'\{k\}_\{m\} copy_rec.png' \(1 results\).*--results"):
        detect_layout(both, scan)


def test_ocr_subsets():
    uvdoc, dir300 = LAYOUTS["uvdoc"], LAYOUTS["dir300"]
    assert len(uvdoc.ocr_scans(None, "setting2")) == 20  # UVDoc's OCR_FILES_UVDOC
    assert len(dir300.ocr_scans(None, "setting1")) == 90  # DocGeoNet's list
    assert dir300.ocr_scans("all", "setting1") == tuple(range(1, 301))
    assert dir300.ocr_scans("3, 1", "setting1") == (1, 3)
    with pytest.raises(LayoutError, match="301 is not a scan of DIR300"):
        dir300.ocr_scans("1,301", "setting1")
    with pytest.raises(LayoutError, match="DIR300's subsets are all, docgeonet"):
        dir300.ocr_scans("setting1", "setting1")
    assert len(DOCUNET.ocr_scans(None, "setting1")) == 30 and len(DOCUNET.ocr_scans(None, "setting2")) == 25
    assert DOCUNET.ocr_scans("setting2", "setting1")[:3] == (1, 9, 10)


class TestPairsList:
    def test_paths_from_the_lists_folder(self, tmp_path):
        _touch(tmp_path / "out", "a.png", "b.png")
        _touch(tmp_path / "gt", "a.png")
        listed = tmp_path / "pairs.csv"
        listed.write_text("result,scan,photo\nout/a.png,gt/a.png,in/a.jpg\nout/b.png,gt/b.png,in/b.jpg\n")
        found = read_pairs_list(listed)
        assert [(pair.key, pair.scan, pair.photo) for pair in found.pairs] == [
            ("out/a.png", tmp_path / "gt" / "a.png", tmp_path / "in" / "a.jpg")
        ]
        assert [(pair.key, path.name) for pair, path in found.missing] == [("out/b.png", "b.png")]
        assert found.describe() == "layout: a pairs list; 2 pairs listed, 1 found"

    @pytest.mark.parametrize(
        "text, message",
        [
            ("unwarped,scan\na,b\n", "starts with the header line 'result,scan'"),
            ("result,scan\na,b,c\n", "line 2: expected 2 non-empty names"),
            ("result,scan\na,\n", "line 2: expected 2 non-empty names"),
            ("result,scan\na,b\na,c\n", "line 3: the result a is listed twice"),
            ("result,scan\n", "lists no pairs"),
        ],
    )
    def test_bad_lists_name_the_line(self, tmp_path, text, message):
        listed = tmp_path / "pairs.csv"
        listed.write_text(text)
        with pytest.raises(LayoutError, match=message):
            read_pairs_list(listed)

    def test_names_that_are_not_utf8(self, tmp_path):
        name = b"caf\xe9.png".decode("utf-8", "surrogateescape")
        _touch(tmp_path, name, "gt.png")
        listed = tmp_path / "pairs.csv"
        listed.write_bytes(b"result,scan\ncaf\xe9.png,gt.png\n")
        (pair,) = read_pairs_list(listed).pairs
        assert pair.key == "caf\\xe9.png" and pair.result == tmp_path / name
