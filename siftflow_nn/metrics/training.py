"""The DocUNet metrics as a ``torchmetrics.Metric``, for the validation step of an unwarping network.

torchmetrics comes with the ``lightning`` extra; only this module imports it, so
``import siftflow_nn`` does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

try:
    from torchmetrics import Metric
except ImportError:
    raise ImportError("siftflow_nn.metrics.training needs torchmetrics: pip install 'siftflow_nn[lightning]'") from None

from siftflow_nn.metrics.docunet import Images, docunet_metrics, ms_ssim_docunet

__all__ = ["DOCUNET_METRICS", "DocUNetMetrics"]

#: The per-pair CSV's name of each metric -> its field in docunet_metrics' DocUNetScores.
DOCUNET_METRICS = {
    "ms_ssim": "ms_ssim",
    "ld": "local_distortion",
    "li_d": "line_distortion",
    "ad": "aligned_distortion",
}


class DocUNetMetrics(Metric):
    """The DocUNet benchmark's MS-SSIM, LD, Li-D and AD of unwarped pages against their scans, each
    pair scored as ``docunet_metrics`` scores it, averaged over the pairs of every update.

    One class for the four rather than one each: LD, Li-D and AD come from one SIFT flow per pair,
    which is almost all of the time, and separate metrics would each compute it again. ``metrics``
    picks some; MS-SSIM alone needs no flow (about 50 times faster than the four).

    The state is a float64 sum per metric and a count of pairs, summed across processes
    (``dist_reduce_fx="sum"``) when ``compute`` runs under DDP: the means are over all pairs of all
    ranks, each pair weighing the same however the batches fell.

    Args:
        metrics: which to compute, of ``"ms_ssim"``, ``"ld"``, ``"li_d"``, ``"ad"`` (the per-pair
            CSV's names; also the keys ``compute`` returns, in this order).
        **kwargs: torchmetrics' ``Metric`` options (``sync_on_compute``, ``process_group``, ...).

    Example:
        >>> page = torch.zeros(1, 1, 120, 90)
        >>> page[..., 30:34, 10:80] = 1  # a line of "text"
        >>> metric = DocUNetMetrics()
        >>> metric.update(page, page)  # in a validation step: the network's output, the scans
        >>> {name: round(float(value), 4) for name, value in metric.compute().items()}
        {'ms_ssim': 1.0, 'ld': 0.0, 'li_d': 0.0, 'ad': 0.0}
        >>> metric.reset()  # at the end of the epoch, after logging
    """

    is_differentiable = False
    higher_is_better = None  # MS-SSIM's higher is better, the distortions' lower
    full_state_update = False

    def __init__(self, metrics: Sequence[str] = tuple(DOCUNET_METRICS), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = _check_metrics(metrics)
        for name in self.metrics:
            self.add_state(f"{name}_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("pairs", torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, unwarped: Images, scan: Images) -> None:
        """Score a batch of pairs and add them to the sums.

        Args:
            unwarped: the unwarped pages, ``(B, C, H, W)`` (1 or 3 channels), floating point in
                ``[0, 1]`` (clamp a network's output first: values outside are an error, as in
                ``docunet_metrics``) or uint8; or a list of ``(C, H, W)`` ones of different sizes.
            scan: their scans, in the same form (they may differ in size from ``unwarped``).
        """
        with torch.no_grad():  # the metrics are not differentiable: no graph for the flow
            if self.metrics == ("ms_ssim",):
                values = {"ms_ssim": ms_ssim_docunet(unwarped, scan)}
            else:
                scores = docunet_metrics(unwarped, scan)
                values = {name: getattr(scores, DOCUNET_METRICS[name]) for name in self.metrics}
        for name, value in values.items():
            total = getattr(self, f"{name}_sum")
            total += value.to(total).sum()
        self.pairs += value.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        """The mean of each metric over the pairs so far (of every rank under DDP).

        Returns:
            ``{name: 0-d float64 tensor}`` for the names in ``metrics``, in their order.

        Raises:
            RuntimeError: no pair was scored (on any rank) since the last ``reset``.
        """
        if not self.pairs:
            raise RuntimeError("DocUNetMetrics.compute: no pair was scored; call update(unwarped, scan) first")
        return {name: getattr(self, f"{name}_sum") / self.pairs for name in self.metrics}

    def extra_repr(self) -> str:
        return f"metrics={self.metrics}"


def _check_metrics(metrics: Any) -> tuple[str, ...]:
    """``metrics`` as a tuple of known names, each once."""
    if isinstance(metrics, str) or not isinstance(metrics, Sequence):
        raise TypeError(f"metrics must be a sequence of names such as ('ld', 'ad'), got {metrics!r}")
    metrics = tuple(metrics)
    unknown = [name for name in metrics if not isinstance(name, str) or name not in DOCUNET_METRICS]
    if unknown or not metrics or len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics must name each of {', '.join(DOCUNET_METRICS)} at most once, and one at least, "
                         f"got {metrics!r}")  # fmt: skip
    return metrics
