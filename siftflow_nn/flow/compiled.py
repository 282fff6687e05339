"""The compiled SIFT Flow solver (numba, CPU): the original's sweeps on uint8 descriptors.

``CompiledSolver`` is what ``SIFTFlow`` uses for CPU tensors when numba is installed; its kernels
are ``_bp_kernels.py`` (the terms and the in-level hierarchy), ``_bp_sweeps.py`` (the
belief-propagation sweeps, 16 rows at a time, in the layout of ``_bands.py``) and
``_pyramid_kernels.py`` (pyramid).
Batch items go one at a time, each on all of torch's threads (``torch.set_num_threads``).
"""

from __future__ import annotations

import numpy as np
import torch

from siftflow_nn._threads import numba_threads
from siftflow_nn.flow.pyramid import LevelPlan, descriptor_pyramid_hwc

try:
    from siftflow_nn.flow import _bp_kernels
except ImportError:  # numba missing: SIFTFlow falls back to the torch solver
    _bp_kernels = None

AVAILABLE = _bp_kernels is not None


class CompiledSolver:
    """Pyramids and per-level solutions with the compiled kernels (see ``TorchSolver`` for the
    same interface on any device)."""

    def pyramid(self, sift: torch.Tensor, num_levels: int, schedule: str) -> list[list[np.ndarray]]:
        """Per level, finest first, the ``(h, w, D)`` uint8 pyramid level of every batch item."""
        hwc = sift.permute(0, 2, 3, 1).contiguous().numpy()  # no copy when sift is channels last
        with numba_threads():
            items = [descriptor_pyramid_hwc(item, num_levels, schedule) for item in hwc]
        return [[item[level] for item in items] for level in range(num_levels)]

    @staticmethod
    def level_size(level: list[np.ndarray]) -> tuple[int, int]:
        return level[0].shape[:2]

    def solve(self, sift1, sift2, offset: torch.Tensor, plan: LevelPlan, alpha: float, d: float, energies: str):
        """One level, item by item: labels ``(B, 2, h, w)`` int32 and the energies asked for
        (``"every"``: ``(iterations, B)``, ``"last"``: ``(1, B)``, ``"none"``: ``(0, B)``)."""
        labels, recorded = [], []
        with numba_threads():
            for item1, item2, item_offset in zip(sift1, sift2, offset.numpy()):
                item_offset = np.ascontiguousarray(item_offset)
                data = _bp_kernels.data_term(np.ascontiguousarray(item1), np.ascontiguousarray(item2), item_offset,
                                             plan.window)  # fmt: skip
                item_labels, item_energies = _bp_kernels.solve(
                    data, item_offset, plan.window, alpha, d, plan.gamma, plan.iterations, plan.hierarchy, energies
                )
                labels.append(torch.from_numpy(item_labels))
                recorded.append(torch.from_numpy(item_energies))
        return torch.stack(labels), torch.stack(recorded, dim=1)
