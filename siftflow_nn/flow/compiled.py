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
from siftflow_nn.flow.pyramid import LevelPlan, descriptor_pyramid_hwc, warn_about_float_descriptors

AVAILABLE = kernels is not None


def stored_hwc(sift: torch.Tensor, name: str) -> np.ndarray:
    """One ``(D, H, W)`` descriptor image as the ``(H, W, D)`` uint8 array the kernels take: a view
    when it is uint8 channels last already, else one pass that converts and transposes together
    (a few percent of a match; converting in torch, then transposing, cost a third of one)."""
    hwc = sift.permute(1, 2, 0)
    if sift.dtype == torch.uint8 and hwc.is_contiguous():
        return hwc.numpy()
    if sift.dtype not in (torch.uint8, torch.float32, torch.float64):
        sift = sift.float()  # float16 / bfloat16 (autocast): numpy has no bfloat16
    out = np.empty((*sift.shape[1:], sift.shape[0]), np.uint8)
    nan, largest = kernels.stored_hwc(sift.numpy(), out, threads())
    if sift.is_floating_point():
        warn_about_float_descriptors(name, nan, largest, sift.numel())
    return out


class CompiledSolver:
    """Pyramids and per-level solutions with the compiled kernels (see ``TorchSolver`` for the
    same interface on any device)."""

    def pyramid(self, sift: torch.Tensor, num_levels: int, schedule: str, name: str) -> list[list[np.ndarray]]:
        """Per level, finest first, the ``(h, w, D)`` uint8 pyramid level of every batch item.

        ``sift``: ``(B, D, H, W)`` descriptors in any layout, uint8 or float on the 0..255 scale (read
        as the mex reads them: truncated, clamped; NaN, with a warning naming ``name``, as 0).
        """
        items = [descriptor_pyramid_hwc(stored_hwc(item, name), num_levels, schedule) for item in sift.detach()]
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
