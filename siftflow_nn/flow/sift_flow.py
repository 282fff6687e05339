"""SIFT Flow: dense correspondence by discrete optimisation over a descriptor pyramid.

Liu, Yuen, Torralba, "SIFT Flow: Dense correspondence across scenes and its applications",
TPAMI 2011, section 3: a truncated L1 data term on SIFT descriptors, a small-displacement term and
a truncated L1 smoothness term, minimised by dual-layer belief propagation, coarse to fine. Unlike
``local_matching.py`` (each pixel's best match on its own), it finds one smooth flow for the whole
image. The driver here follows ``SIFTflowc2f.m``; ``pyramid.py`` builds the levels and plans them;
a solver does each level: ``compiled.py`` (C++, the original's sweeps) or
``belief_propagation.py`` (torch, any device).
"""

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from siftflow_nn import _native
from siftflow_nn._checks import (
    check_bool,
    check_image,
    check_non_negative_number,
    check_positive_int,
    check_same_shape,
    describe_value,
)
from siftflow_nn.descriptor import SIFTFlowDescriptor, compute_descriptor
from siftflow_nn.flow import compiled
from siftflow_nn.flow.belief_propagation import TorchSolver, energy, level_field
from siftflow_nn.flow.pyramid import SCHEDULES, LevelPlan, level_plans, upsample_offsets

__all__ = ["SIFTFlow"]

_SOLVERS = ("auto", "compiled", "torch")
_ENERGY_RECORDS = ("every", "last", "none")


class SIFTFlow(nn.Module):
    r"""Dense flow between two images by SIFT Flow matching (no trainable weights).

    For ``image1`` and ``image2`` it returns the integer flow ``(u, v)`` with
    ``image2(x + u, y + v) ~ image1(x, y)``, minimising (Liu et al., TPAMI 2011, eq. 3)

    .. math::
        E = \sum_p \|s_1(p) - s_2(p + w)\|_1 + \sum_p \eta (|u| + |v|)
            + \sum_{(p, q)} \min(\alpha |u_p - u_q|, d) + \min(\alpha |v_p - v_q|, d)

    on uint8 SIFT Flow descriptors, by dual-layer belief propagation on a pyramid of descriptor
    images (smoothed and halved ``num_levels - 1`` times), each level searching a window around
    the upsampled flow of the coarser one. The defaults and the schedule are those of the original
    code's demo (``SIFTflowc2f.m``, 2009): descriptors with cell size 3, ``alpha = 2 * 255``,
    ``d = 40 * 255``, ``gamma = 0.005 * 255`` (eta, doubled at each coarser level), 4 levels,
    window radius 10 at the top and 2 below, 60 iterations at the top and 30 down to 18 below
    (``round(linspace(30, 18, 4))``), in-level hierarchies of 2 at the top and ``num_levels - i``
    at level ``i`` (1 = finest).

    Two solvers give this result: ``"compiled"`` (C++, CPU) follows the original's sequential
    sweeps exactly (the same energies, iteration by iteration) and runs them in parallel where the
    sweep order allows; ``"torch"`` (any device, the portable reference) updates checkerboard
    colours at once, a slightly different schedule (energies within about 0.5%). ``"auto"`` picks
    the compiled one for CPU tensors when the package's compiled kernels are built (they are in a
    wheel, and in a source install with a C++ compiler).

    Args:
        alpha: smoothness cost per pixel of flow difference between neighbours.
        d: truncation of the smoothness cost.
        gamma: small-displacement cost per pixel of flow at the finest level.
        num_levels: pyramid levels.
        window: search radius at the levels below the top.
        top_window: search radius at the top level.
        top_iterations: BP iterations at the top level.
        iterations: BP iterations at the finest level (coarser levels run fewer, from 0.6x).
        cell_size, num_bins: descriptor options.
        fast: a third of the iterations at every level (see the README for what it costs).
        solver: ``"auto"``, ``"compiled"`` or ``"torch"``.
        schedule: ``"2009"`` (the demo's ``SIFTflowc2f.m``, default) or ``"2010"`` (the SIFT flow
            release's: a uint8 pyramid, windows ``window + i - 1``, ``iterations`` at every level
            below the top; see ``pyramid.py``).
        derivative: the descriptor's, ``"sobel"`` (default) or ``"release"`` (``mexDenseSIFT``'s).

    Shape:
        - image1, image2: ``(B, C, H, W)`` in ``[0, 1]``.
        - Output: ``(B, 2, H, W)`` float flow with integer values (x then y).

    Example:
        >>> from siftflow_nn.synthetic import translated_pair
        >>> image1, image2, truth = translated_pair(48, 56, dx=2, dy=-1)
        >>> flow = SIFTFlow(num_levels=2, iterations=10, top_iterations=10)(image1[None], image2[None])
        >>> flow[0, :, 24, 28].tolist()
        [2.0, -1.0]
    """

    def __init__(
        self,
        alpha: float = 2 * 255,
        d: float = 40 * 255,
        gamma: float = 0.005 * 255,
        num_levels: int = 4,
        window: int = 2,
        top_window: int = 10,
        top_iterations: int = 60,
        iterations: int = 30,
        cell_size: int | Sequence[int] = 3,
        num_bins: int = 8,
        fast: bool = False,
        solver: str = "auto",
        schedule: str = "2009",
        derivative: str = "sobel",
    ) -> None:
        super().__init__()
        self.alpha = check_non_negative_number(alpha, "alpha")
        self.d = check_non_negative_number(d, "d")
        self.gamma = check_non_negative_number(gamma, "gamma")
        if solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(map(repr, _SOLVERS))}, got {solver!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {schedule!r}")
        self.num_levels = check_positive_int(num_levels, "num_levels")
        self.window = check_positive_int(window, "window")
        self.top_window = check_positive_int(top_window, "top_window")
        self.top_iterations = check_positive_int(top_iterations, "top_iterations")
        self.iterations = check_positive_int(iterations, "iterations")
        self.fast = check_bool(fast, "fast")
        self.solver, self.schedule = solver, schedule
        self.descriptor = SIFTFlowDescriptor(cell_size, 1, True, num_bins, derivative)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha:g}, d={self.d:g}, gamma={self.gamma:g}, num_levels={self.num_levels}, "
            f"window={self.window}, top_window={self.top_window}, top_iterations={self.top_iterations}, "
            f"iterations={self.iterations}, fast={self.fast}, solver={self.solver!r}, schedule={self.schedule!r}"
        )

    def minimum_size(self) -> int:
        """The smallest height and width the pyramid allows (two pixels at the top level)."""
        return 2 ** (self.num_levels - 1) + 1

    def level_plans(self) -> list[LevelPlan]:
        """Per pyramid level, finest first: window radius, iterations, in-level hierarchy, gamma."""
        return level_plans(
            self.num_levels,
            self.window,
            self.top_window,
            self.iterations,
            self.top_iterations,
            self.gamma,
            self.fast,
            self.schedule,
        )

    def forward(
        self,
        image1: torch.Tensor,
        image2: torch.Tensor,
        on_level: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
    ) -> torch.Tensor:
        """The flow from ``image1`` to ``image2``; ``on_level`` as in ``match`` (the energies are
        computed only for it: without it, no level records them)."""
        check_image(image1, "image1")
        check_image(image2, "image2")
        check_same_shape(image1, image2, "image1", "image2")
        for name, image in (("image1", image1), ("image2", image2)):
            _warn_about_nan(image, name)
        # Straight to uint8 (the descriptor writes to_uint8 of each strip of rows), channels last:
        # the compiled solver's layout.
        with torch.no_grad():
            sift1, sift2 = (self._uint8_descriptor(image) for image in (image1, image2))
        return self.match(sift1, sift2, on_level, energies="every" if on_level is not None else "none")[0]

    def _uint8_descriptor(self, image: torch.Tensor) -> torch.Tensor:
        height, width = self.descriptor.output_size(*image.shape[-2:])
        shape = (image.shape[0], self.descriptor.descriptor_dim, height, width)
        out = torch.empty(shape, dtype=torch.uint8, device=image.device, memory_format=torch.channels_last)
        return compute_descriptor(image, self.descriptor.options, out=out)

    @torch.no_grad()
    def match(
        self,
        sift1: torch.Tensor,
        sift2: torch.Tensor,
        on_level: Callable[[int, dict[str, torch.Tensor]], None] | None = None,
        energies: str = "every",
    ) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Flow between two descriptor images on the 0..255 scale, and what each level did.

        Args:
            sift1, sift2: ``(B, D, H, W)`` descriptors, uint8 (``to_uint8(descriptor)``) or float
                with values in 0..255 (truncated to uint8, as the original's mex reads them). The
                compiled solver works channels last: passing ``torch.channels_last`` tensors
                spares it a copy of each.
            on_level: called after each level (coarsest first) with the level's index (0 = finest)
                and its dict below: for progress bars.
            energies: which energies each level records: ``"every"`` iteration's (default, as the
                original reports them), the ``"last"`` one's, or ``"none"``. The flow is the same;
                the labels of an iteration whose energy is not recorded are not computed, which
                saves about a third of the time (a DocUNet pair: about 0.7x with ``"none"``).

        Returns:
            ``(flow, levels)``: the ``(B, 2, H, W)`` float flow, and per level (finest first) a dict
            with its ``flow``, ``offset`` (the window centres it searched around) and ``energy``
            (float64, ``(iterations, B)``: the energy after each iteration; ``(1, B)`` with
            ``energies="last"``; no ``energy`` with ``"none"``).
        """
        if energies not in _ENERGY_RECORDS:
            raise ValueError(f"energies must be one of {', '.join(map(repr, _ENERGY_RECORDS))}, got {energies!r}")
        for name, sift in (("sift1", sift1), ("sift2", sift2)):
            if not isinstance(sift, torch.Tensor) or sift.dim() != 4:
                raise ValueError(f"{name} must be a B x D x H x W uint8 or float tensor, got {describe_value(sift)}")
            if not (sift.is_floating_point() or sift.dtype == torch.uint8):
                raise TypeError(f"{name} must be uint8 or floating point, got dtype {sift.dtype}")
        check_same_shape(sift1, sift2, "sift1", "sift2")
        if 0 in sift1.shape[:2]:
            raise ValueError(f"sift1 and sift2 must hold at least one descriptor image of D > 0 channels, got shape "
                             f"{tuple(sift1.shape)}")  # fmt: skip
        if sift1.device.type == "meta":
            raise ValueError("sift1 and sift2 are on the meta device (shapes without data): move them to cpu or cuda")
        height, width = sift1.shape[-2:]
        if min(height, width) < self.minimum_size():
            raise ValueError(
                f"images of {height} x {width} are too small for num_levels={self.num_levels}: "
                f"height and width must be at least {self.minimum_size()}"
            )
        solver = _pick_solver(self.solver, sift1.device)
        pyramids = [
            solver.pyramid(sift, self.num_levels, self.schedule, name)
            for name, sift in (("sift1", sift1), ("sift2", sift2))
        ]
        flow = None
        levels: list[dict[str, torch.Tensor]] = []
        for index, plan in reversed(list(enumerate(self.level_plans()))):
            level1, level2 = pyramids[0].pop(), pyramids[1].pop()  # coarsest first; freed once solved
            size = solver.level_size(level1)
            if flow is None:
                offset = torch.zeros(sift1.shape[0], 2, *size, dtype=torch.int32, device=sift1.device)
            else:
                offset = upsample_offsets(flow, size)
            labels, recorded = solver.solve(level1, level2, offset, plan, self.alpha, self.d, energies)
            flow = (offset + labels - plan.window).float()
            levels.insert(0, {"flow": flow, "offset": offset.float()})
            if energies != "none":
                levels[0]["energy"] = recorded
            if on_level is not None:
                on_level(index, levels[0])
        return flow, levels

    def energy(
        self,
        sift1: torch.Tensor,
        sift2: torch.Tensor,
        flow: torch.Tensor,
        offset: torch.Tensor,
        level: int = 0,
    ) -> torch.Tensor:
        """The energy the original reports for ``flow`` at one pyramid level (``(B,)``, float64).

        ``offset`` is the level's window centres (its radius is the level's plan's);
        ``sift1``, ``sift2`` are that level's descriptors on the 0..255 scale.
        """
        plan = self.level_plans()[level]
        field = level_field(sift1, sift2, offset, plan, self.alpha, self.d)
        labels = (flow - offset + plan.window).long()
        return energy(field, labels[:, 0], labels[:, 1])


def _pick_solver(name: str, device: torch.device):
    """The solver for this call (and why not the compiled one, where it was asked for)."""
    if name == "torch":
        return TorchSolver()
    if device.type != "cpu":
        if name == "compiled":
            raise ValueError(f"solver='compiled' runs on the CPU; the descriptors are on {device}")
        return TorchSolver()
    if not compiled.AVAILABLE:
        if name == "compiled":
            raise ImportError(f"solver='compiled' needs {_native.MISSING}; reinstall the package with a C++ compiler")
        warnings.warn(
            f"SIFTFlow falls back to its portable torch solver, several times slower and with checkerboard "
            f"updates (energies within about 1% of the original's): {_native.MISSING}; reinstall the package "
            f"with a C++ compiler (see the README) for the compiled one",
            RuntimeWarning,
            stacklevel=4,
        )
        return TorchSolver()
    return compiled.CompiledSolver()


def _warn_about_nan(image: torch.Tensor, name: str) -> None:
    """A NaN pixel spoils the descriptors whose support holds it (stored as 0): say so, not a silent flow."""
    nan = int(torch.isnan(image).sum())
    if nan:
        warnings.warn(
            f"{name} has {nan} NaN values (of {image.numel()}): the descriptors around them are stored as 0, so "
            f"the flow there means nothing",
            RuntimeWarning,
            stacklevel=3,
        )
