"""The compiled SIFT Flow solver (C++, CPU): the original's sweeps on uint8 descriptors.

``CompiledSolver`` is what ``SIFTFlow`` uses for CPU tensors when the compiled kernels are built
(``siftflow_nn._kernels``): a level's data term, range term, in-level hierarchy and belief-propagation
sweeps in one call (``csrc/solve.cpp``, ``terms.cpp``, ``sweeps.cpp``), the pyramids in another
(``csrc/pyramid.cpp``). Batch items go one at a time, each on all of torch's threads
(``torch.set_num_threads``).
"""

from __future__ import annotations

import numpy as np
import torch

from siftflow_nn._native import kernels, threads
from siftflow_nn.flow.pyramid import LevelPlan, descriptor_pyramid_hwc

AVAILABLE = kernels is not None


class CompiledSolver:
    """Pyramids and per-level solutions with the compiled kernels (see ``TorchSolver`` for the
    same interface on any device)."""

    def pyramid(self, sift: torch.Tensor, num_levels: int, schedule: str) -> list[list[np.ndarray]]:
        """Per level, finest first, the ``(h, w, D)`` uint8 pyramid level of every batch item."""
        hwc = sift.permute(0, 2, 3, 1).contiguous().numpy()  # no copy when sift is channels last
        items = [descriptor_pyramid_hwc(item, num_levels, schedule) for item in hwc]
        return [[item[level] for item in items] for level in range(num_levels)]

    @staticmethod
    def level_size(level: list[np.ndarray]) -> tuple[int, int]:
        return level[0].shape[:2]

    def solve(self, sift1, sift2, offset: torch.Tensor, plan: LevelPlan, alpha: float, d: float, energies: str):
        """One level, item by item: labels ``(B, 2, h, w)`` int32 and the energies asked for
        (``"every"``: ``(iterations, B)``, ``"last"``: ``(1, B)``, ``"none"``: ``(0, B)``)."""
        labels, recorded = [], []
        for item1, item2, item_offset in zip(sift1, sift2, offset.numpy()):
            item_labels, item_energies = kernels.solve_level(
                np.ascontiguousarray(item1), np.ascontiguousarray(item2), np.ascontiguousarray(item_offset),
                plan.window, alpha, d, plan.gamma, plan.iterations, plan.hierarchy, energies, threads(),
            )  # fmt: skip
            labels.append(torch.from_numpy(item_labels))
            recorded.append(torch.from_numpy(item_energies))
        return torch.stack(labels), torch.stack(recorded, dim=1)
