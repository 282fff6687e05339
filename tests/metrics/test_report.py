"""The summary: means over what was computed, the papers' table in their column order, Markdown."""

import json
from pathlib import Path

import pytest

from siftflow_nn.metrics.report import Mean, markdown_report, mean_lines, means, paper_table, write_report

REFS = json.loads((Path(__file__).parents[1] / "data" / "docunet_bench" / "refs.json").read_text())


def _rows(protocol="doctr"):
    return [{**{name: pair[name] for name in ("ms_ssim", "ld", "li_d", "ad")},
             "ed": pair[f"{protocol}_ed"], "cer": pair[f"{protocol}_cer"]} for pair in REFS["pairs"]]  # fmt: skip


@pytest.mark.parametrize("protocol", ["doctr", "uvdoc"])
def test_means_are_the_references(protocol):
    averages = means(_rows(protocol))
    expected = REFS["means"]
    for name in ("ms_ssim", "ld", "li_d", "ad"):
        assert averages[name] == Mean(pytest.approx(expected[name], abs=1e-15), 4)
    assert averages["ed"].value == pytest.approx(expected[f"{protocol}_ed"], abs=1e-12)
    assert averages["cer"].value == pytest.approx(expected[f"{protocol}_cer"], abs=1e-15)


def test_the_papers_column_order_and_digits():
    head, values = paper_table(means(_rows()))
    assert [cell.strip() for cell in head.strip("|").split("|")] == ["MS-SSIM", "LD", "Li-D", "AD", "ED", "CER"]
    assert [cell.strip() for cell in values.strip("|").split("|")] == ["0.8540", "2.13", "1.14", "0.146", "52.25",
                                                                       "0.0462"]  # fmt: skip


def test_ocr_means_are_over_the_ocr_subset_only():
    rows = _rows()
    rows[0]["ed"] = rows[0]["cer"] = None  # outside the subset
    lines = mean_lines(means(rows), 5, "doctr protocol, Tesseract 5.3.0")
    assert lines[0].startswith("mean over 4 of 5 pairs: MS-SSIM 0.853974  LD 2.1272  Li-D 1.1376  AD 0.1462")
    assert lines[1] == "mean over 3 OCR'd results: ED 68.00  CER 0.0601  (doctr protocol, Tesseract 5.3.0)"
    assert mean_lines({}, 3) == ["no pair scored (of 3)"]


def test_the_markdown_report(tmp_path):
    rows = [{"result": "1_1 copy|rec.png", "scan": "1.png", **_rows()[0]}]
    text = markdown_report("DocUNet benchmark", ["layout: DocUNet"], means(rows), rows)
    assert text.startswith("# DocUNet benchmark\n\n- layout: DocUNet\n\n| MS-SSIM | LD   | Li-D | AD    | ED   |")
    assert "| 1_1 copy\\|rec.png | 1.png | 0.919758 | 1.6947 | 0.7899 | 0.0871 | 5.00 | 0.0044 |" in text
    path = tmp_path / "report.md"
    write_report(path, "DocUNet benchmark", ["layout: DocUNet"], means(rows), rows)
    assert path.read_text() == text
