"""ED and CER against DocTr's OCR_eval.py and UVDoc's ocr_eval.py run as they are
(tests/data/docunet_bench/refs.json, Tesseract 5.3.0), then the protocols' definitions and the API's
edges. Tesseract must be installed (CI installs it): a page takes 1-3 s, so each image is OCR'd once
per protocol, in a module fixture."""

import json
import os
import random
import sys

import numpy as np
import pytesseract
import pytest
import torch
from PIL import Image

from siftflow_nn.metrics import ocr
from tests.conftest import DATA

BENCH = DATA / "docunet_bench"
REFS = json.loads((BENCH / "refs.json").read_text())
PAIRS = REFS["pairs"]


def _photo_size(pair: dict) -> tuple[int, int]:
    with Image.open(BENCH / "crop" / pair["photo"]) as photo:
        return photo.size


@pytest.fixture(scope="module")
def texts() -> dict[tuple[str, str], str]:
    """``{(protocol, file name): text}`` for both scans and the four results, by both protocols."""
    found = {}
    for name in ocr.OCR_PROTOCOLS:
        for scan in sorted({pair["scan"] for pair in PAIRS}):
            found[name, scan] = ocr.ocr_scan(BENCH / "scan" / scan, name)
        for pair in PAIRS:
            found[name, pair["rec"]] = ocr.ocr_text(BENCH / "rec" / pair["rec"], name, _photo_size(pair))
    return found


class TestAgainstTheOriginalScripts:
    @pytest.mark.parametrize("protocol", ["doctr", "uvdoc"])
    @pytest.mark.parametrize("pair", PAIRS, ids=[pair["rec"] for pair in PAIRS])
    def test_ed_and_cer(self, texts, pair, protocol):
        scores = ocr.edit_scores(texts[protocol, pair["rec"]], texts[protocol, pair["scan"]], protocol)
        ed, cer = pair[f"{protocol}_ed"], pair[f"{protocol}_cer"]
        context = (
            f"{protocol} on {pair['rec']!r} with Tesseract {ocr.tesseract_version()} "
            f"(the references used {REFS['tesseract']}: OCR depends on the version)"
        )
        assert abs(scores.ed - ed) <= 1, f"ED {scores.ed}, the original script's {ed}: {context}"
        assert scores.cer == pytest.approx(cer, abs=1e-3), f"CER {scores.cer}, the original's {cer}: {context}"

    @pytest.mark.parametrize("pair", PAIRS[::2], ids=[pair["scan"] for pair in PAIRS[::2]])
    def test_scan_text_length(self, texts, pair):
        length = len(texts["doctr", pair["scan"]])
        assert abs(length - pair["gt_chars"]) <= 1, f"with Tesseract {ocr.tesseract_version()}"

    def test_an_array_reads_as_its_file(self, texts):
        with Image.open(BENCH / "scan" / "2.png") as scan:
            array = np.array(scan)
        assert ocr.ocr_scan(array, "doctr") == texts["doctr", "2.png"]

    def test_the_protocols_differ_on_the_same_images(self, texts):
        # The point: the same results give mean ED 52.25 by one protocol and 61.25 by the other.
        for protocol in ("doctr", "uvdoc"):
            mean = np.mean(
                [ocr.edit_scores(texts[protocol, p["rec"]], texts[protocol, p["scan"]], protocol).ed for p in PAIRS]
            )
            assert abs(mean - REFS["means"][f"{protocol}_ed"]) <= 1


def _textbook_levenshtein(a: str, b: str) -> int:
    """Wagner-Fischer over characters, the definition DocTr's script computes."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (char_a != char_b))
    return row[-1]


class TestEditScores:
    @pytest.mark.parametrize("protocol", ["doctr", "uvdoc"])
    def test_known_distances(self, protocol):
        assert ocr.edit_scores("kitten", "sitting", protocol) == (3, 3 / 7)
        assert ocr.edit_scores("same text\n", "same text\n", protocol) == (0, 0.0)
        assert ocr.edit_scores("", "abcd", protocol) == (4, 1.0)

    def test_whitespace_and_newlines_count_in_doctr(self):
        assert ocr.edit_scores("a b\nc", "a b c", "doctr") == (1, 1 / 5)
        assert ocr.edit_scores("abc", "abc\n\n", "doctr") == (2, 2 / 5)
        assert ocr.edit_scores("  abc\n\f", "abc\n", "doctr") == (3, 3 / 4)
        assert ocr.edit_scores("x", "\n", "doctr") == (1, 1.0)

    def test_jiwer_strips_the_ends_only(self):
        # ED stays on the raw strings; jiwer's CER strips leading and trailing whitespace first.
        assert ocr.edit_scores("  abc\n\f", "abc\n", "uvdoc") == (3, 0.0)
        assert ocr.edit_scores("a  b", "a b\n", "uvdoc") == (2, 1 / 3)

    def test_ed_is_the_scripts_levenshtein(self):
        rng = random.Random(0)
        for _ in range(20):
            a, b = ("".join(rng.choice("ab \n\u00e9") for _ in range(rng.randrange(12))) for _ in range(2))
            expected = _textbook_levenshtein(b, a)  # DocTr passes (scan, result), UVDoc (result, scan)
            assert ocr.edit_scores(a, b, "doctr").ed == ocr.edit_scores(a, b, "uvdoc").ed == expected

    @pytest.mark.parametrize(("protocol", "reference"), [("doctr", ""), ("uvdoc", ""), ("uvdoc", " \n\f")])
    def test_a_reference_without_text_is_refused(self, protocol, reference):
        with pytest.raises(ValueError, match="reference .* must hold text"):
            ocr.edit_scores("abc", reference, protocol)

    def test_bad_arguments(self):
        with pytest.raises(TypeError, match="text must be a str"):
            ocr.edit_scores(b"abc", "abc", "doctr")
        with pytest.raises(TypeError, match="reference must be a str"):
            ocr.edit_scores("abc", None, "doctr")
        with pytest.raises(ValueError, match="protocol must be one of 'doctr', 'uvdoc'"):
            ocr.edit_scores("abc", "abc", "DocTr")
        with pytest.raises(ValueError, match="protocol.cer must be 'raw' or 'jiwer'"):
            ocr.edit_scores("abc", "abc", ocr.OCR_PROTOCOLS["doctr"]._replace(cer="words"))


class TestProtocolsAndSubsets:
    def test_protocols_follow_the_scripts(self):
        doctr, uvdoc = ocr.OCR_PROTOCOLS["doctr"], ocr.OCR_PROTOCOLS["uvdoc"]
        assert (doctr.tesseract_config, doctr.resize_to_photo, doctr.cer, doctr.subset) == (
            "",
            False,
            "raw",
            "setting1",
        )
        assert (uvdoc.tesseract_config, uvdoc.resize_to_photo, uvdoc.cer, uvdoc.subset) == (
            "--oem 1",
            True,
            "jiwer",
            "setting2",
        )
        assert all(name == protocol.name for name, protocol in ocr.OCR_PROTOCOLS.items())

    def test_subsets(self):
        setting1, setting2 = ocr.DOCUNET_SUBSETS["setting1"], ocr.DOCUNET_SUBSETS["setting2"]
        assert len(setting1) == 30 and len(setting2) == 25
        assert setting1[7:10] == (9, 10, 21) and setting1[-1] == 53 and 8 not in setting1
        assert setting2[:4] == (1, 9, 10, 12) and setting2[-1] == 49
        assert all(list(subset) == sorted(set(subset)) for subset in ocr.DOCUNET_SUBSETS.values())

    def test_parse_subset(self):
        assert ocr.parse_subset("all") is None
        assert ocr.parse_subset(" Setting1 ") == ocr.DOCUNET_SUBSETS["setting1"]
        assert ocr.parse_subset("setting2") == ocr.DOCUNET_SUBSETS["setting2"]
        assert ocr.parse_subset("40, 7,12") == (7, 12, 40)
        assert ocr.parse_subset("5") == (5,)

    @pytest.mark.parametrize("text", ["", "1,,2", "1,", "a", "0", "-1", "1.5", "setting3", "1 2", "\u0665"])
    def test_bad_subsets(self, text):
        with pytest.raises(ValueError, match="subset must be 'all', 'setting1', 'setting2' or scan numbers"):
            ocr.parse_subset(text)

    def test_repeated_and_non_string_subsets(self):
        with pytest.raises(ValueError, match="each scan once.*repeated: 3"):
            ocr.parse_subset("3,1,3")
        with pytest.raises(TypeError, match="subset must be a str"):
            ocr.parse_subset([1, 2])


class TestTesseract:
    def test_version(self):
        major, minor = ocr.tesseract_version().split(".")[:2]
        assert major.isdigit() and minor.isdigit()

    def test_missing_tesseract(self, monkeypatch, tmp_path):
        command = str(tmp_path / "no-tesseract")
        monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", command)
        for call in (ocr.tesseract_version, lambda: ocr.ocr_scan(np.zeros((8, 8), np.uint8), "doctr")):
            with pytest.raises(ocr.TesseractNotFoundError) as error:
                call()
            message = str(error.value)
            assert "\n" not in message and repr(command) in message
            for how in ("apt-get install tesseract-ocr", "brew install tesseract", "conda install", "UB Mannheim"):
                assert how in message

    def test_a_command_that_is_not_tesseract(self, monkeypatch):
        # pytesseract would exit the interpreter on a version it cannot read.
        monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "echo")
        with pytest.raises(RuntimeError, match="gave no version pytesseract understands"):
            ocr.tesseract_version()

    def test_missing_pytesseract(self, monkeypatch):
        monkeypatch.setitem(sys.modules, "pytesseract", None)
        with pytest.raises(ocr.TesseractNotFoundError, match="pytesseract, not installed: install it with `apt-get"):
            ocr.tesseract_version()

    def test_one_thread_only_for_the_call(self, monkeypatch):
        blank = np.full((40, 60), 255, np.uint8)
        monkeypatch.delenv("OMP_THREAD_LIMIT", raising=False)
        assert ocr.ocr_scan(blank, "doctr") == ""
        assert "OMP_THREAD_LIMIT" not in os.environ
        monkeypatch.setenv("OMP_THREAD_LIMIT", "2")
        assert ocr.ocr_scan(blank, "uvdoc") == ""
        assert os.environ["OMP_THREAD_LIMIT"] == "2"


class TestInputs:
    def test_uvdoc_needs_the_photo_size(self):
        with pytest.raises(ValueError, match="photo_size is needed by the 'uvdoc' protocol"):
            ocr.ocr_text(BENCH / "rec" / PAIRS[0]["rec"], "uvdoc")

    @pytest.mark.parametrize(
        ("size", "error", "match"),
        [
            ((0, 10), ValueError, r"photo_size\[0\] \(width\) must be a positive int"),
            ((10, 2.5), TypeError, r"photo_size\[1\] \(height\) must be a positive int"),
            ((10, 10, 3), ValueError, r"photo_size must be the photo's \(width, height\)"),
            ("10", ValueError, r"photo_size must be the photo's \(width, height\)"),
        ],
    )
    def test_bad_photo_sizes(self, size, error, match):
        with pytest.raises(error, match=match):
            ocr.ocr_text(np.zeros((8, 8), np.uint8), "uvdoc", size)

    @pytest.mark.parametrize(
        ("image", "error", "match"),
        [
            (np.zeros((8, 8), np.float32), TypeError, "image must be a uint8 array, got a float32 array"),
            (np.zeros((8, 8, 2), np.uint8), ValueError, r"H x W or H x W x C array \(C = 1, 3 or 4"),
            (np.zeros((0, 8), np.uint8), ValueError, r"H x W or H x W x C array"),
            (
                torch.zeros(8, 8, dtype=torch.uint8),
                TypeError,
                "a path, a PIL image or a uint8 array, got a torch.uint8",
            ),
        ],
    )
    def test_bad_images(self, image, error, match):
        with pytest.raises(error, match=match):
            ocr.ocr_text(image, "doctr")

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            ocr.ocr_scan(tmp_path / "missing.png", "doctr")

    def test_one_channel_arrays_and_pil_images(self):
        assert ocr.ocr_text(np.full((40, 60, 1), 255, np.uint8), "doctr") == ""
        assert ocr.ocr_text(Image.new("RGBA", (60, 40)), "uvdoc", photo_size=(30, 20)) == ""
