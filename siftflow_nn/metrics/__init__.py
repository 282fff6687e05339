"""Measures of flow quality: the end-point error (and, in ``docunet``, the document-unwarping metrics)."""

from siftflow_nn.metrics.end_point_error import end_point_error

__all__ = ["end_point_error"]
