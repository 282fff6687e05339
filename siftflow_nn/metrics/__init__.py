"""Measures of flow quality (the end-point error) and of document unwarping (the DocUNet benchmark's
MS-SSIM, Local Distortion and Line Distortion, and PaperEdge's Aligned Distortion, built on the
SIFT flow release's matcher)."""

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

__all__ = [
    "DocUNetEvaluation",
    "DocUNetScores",
    "aligned_distortion",
    "aligned_distortion_of_flow",
    "benchmark_pair",
    "docunet_evaluation",
    "docunet_flow",
    "docunet_metrics",
    "end_point_error",
    "line_distortion",
    "local_distortion",
    "ms_ssim_docunet",
]
