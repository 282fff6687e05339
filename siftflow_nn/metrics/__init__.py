"""Measures of flow quality (the end-point error) and of document unwarping (the DocUNet benchmark's
MS-SSIM, Local Distortion and Line Distortion, built on the SIFT flow release's matcher)."""

from siftflow_nn.metrics.docunet import (
    DocUNetScores,
    benchmark_pair,
    docunet_flow,
    docunet_metrics,
    line_distortion,
    local_distortion,
    ms_ssim_docunet,
)
from siftflow_nn.metrics.end_point_error import end_point_error

__all__ = [
    "DocUNetScores",
    "benchmark_pair",
    "docunet_flow",
    "docunet_metrics",
    "end_point_error",
    "line_distortion",
    "local_distortion",
    "ms_ssim_docunet",
]
