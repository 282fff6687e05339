"""Measures of flow quality (the end-point error) and of document unwarping: the DocUNet benchmark's
MS-SSIM, Local Distortion and Line Distortion, PaperEdge's Aligned Distortion (built on the SIFT flow
release's matcher), ED and CER by the two OCR protocols in use, and pictures of them.

The benchmark runner behind ``siftflow-nn docunet`` lives beside them: ``layouts`` (the benchmarks'
file names), ``runner`` (scoring pairs over processes), ``results`` (the resumable CSV), ``report``
(means and the papers' table); ``training`` holds ``DocUNetMetrics``, a torchmetrics ``Metric``.
"""

from siftflow_nn.metrics.aligned_distortion import aligned_distortion_of_flow
from siftflow_nn.metrics.docunet import (
    DocUNetEvaluation,
    DocUNetScores,
    aligned_distortion,
    benchmark_pair,
    docunet_evaluation,
    docunet_flow,
    docunet_metrics,
    line_distortion,
    local_distortion,
    ms_ssim_docunet,
)
from siftflow_nn.metrics.end_point_error import end_point_error
from siftflow_nn.metrics.figures import flow_figure, summary_figure
from siftflow_nn.metrics.ocr import (
    DOCUNET_SUBSETS,
    OCR_PROTOCOLS,
    OCRProtocol,
    OCRScores,
    TesseractNotFoundError,
    edit_scores,
    ocr_scan,
    ocr_text,
    parse_subset,
    tesseract_version,
)

__all__ = [
    "DOCUNET_SUBSETS",
    "DocUNetEvaluation",
    "DocUNetScores",
    "OCRProtocol",
    "OCRScores",
    "OCR_PROTOCOLS",
    "TesseractNotFoundError",
    "aligned_distortion",
    "aligned_distortion_of_flow",
    "benchmark_pair",
    "docunet_evaluation",
    "docunet_flow",
    "docunet_metrics",
    "edit_scores",
    "end_point_error",
    "flow_figure",
    "line_distortion",
    "local_distortion",
    "ms_ssim_docunet",
    "ocr_scan",
    "ocr_text",
    "parse_subset",
    "summary_figure",
    "tesseract_version",
]
