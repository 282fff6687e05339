"""What every unit test shares (after kornia's ``testing/base.py``): tolerances by dtype, gradient
checks in float64, and TorchScript / export round-trips. Test classes derive from ``BaseTester``;
the ``device`` and ``dtype`` fixtures are in ``conftest.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

import siftflow_nn as sf

# (rtol, atol) by dtype: an ulp-level budget for each precision, as kornia's table.
TOLERANCES = {
    torch.bfloat16: (7.8e-3, 7.8e-3),
    torch.float16: (9.7e-4, 9.7e-4),
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-5, 1e-5),
}


class BaseTester:
    @staticmethod
    def assert_close(
        actual: torch.Tensor,
        expected: torch.Tensor,
        rtol: float | None = None,
        atol: float | None = None,
        exact: bool = False,
    ) -> None:
        """``torch.testing.assert_close`` with the tolerance of the lower of the two dtypes (or
        the ones given); ``exact`` for bit-equal results."""
        if exact:
            rtol = atol = 0.0
        elif rtol is None or atol is None:
            dtype = actual.dtype if actual.element_size() <= expected.element_size() else expected.dtype
            default_rtol, default_atol = TOLERANCES.get(dtype, (0.0, 0.0))
            rtol = default_rtol if rtol is None else rtol
            atol = default_atol if atol is None else atol
        torch.testing.assert_close(actual, expected.to(actual.dtype), rtol=rtol, atol=atol)

    @staticmethod
    def gradcheck(function: Callable, inputs: Sequence[torch.Tensor], fast: bool = True, **options) -> None:
        """``torch.autograd.gradcheck`` on float64 copies of the inputs (that require grad)."""
        inputs = tuple(tensor.detach().double().requires_grad_(True) for tensor in inputs)
        options = {"eps": 1e-6, "atol": 1e-5, **options}
        assert torch.autograd.gradcheck(function, inputs, fast_mode=fast, **options)

    @staticmethod
    def gradgradcheck(function: Callable, inputs: Sequence[torch.Tensor], **options) -> None:
        """Second derivatives (gradient penalties, meta-learning), on float64 copies."""
        inputs = tuple(tensor.detach().double().requires_grad_(True) for tensor in inputs)
        options = {"eps": 1e-6, "atol": 1e-4, **options}
        assert torch.autograd.gradgradcheck(function, inputs, fast_mode=True, **options)

    @classmethod
    def assert_script_equal(cls, module: torch.nn.Module, *inputs: torch.Tensor, atol: float = 1e-6):
        """Script ``module`` and check it computes what eager mode does; returns the scripted one."""
        scripted = torch.jit.script(module)
        cls.assert_close(scripted(*inputs), module(*inputs), rtol=0, atol=atol)
        return scripted

    @classmethod
    def assert_export_equal(cls, module: torch.nn.Module, *inputs: torch.Tensor, atol: float = 1e-6):
        """``export_program`` (dynamic batch, height and width) on ``module``: the same numbers."""
        from siftflow_nn.export import export_program

        program = export_program(module, inputs[0] if len(inputs) == 1 else inputs)
        cls.assert_close(program.module()(*inputs), module(*inputs), rtol=0, atol=atol)
        return program

    @staticmethod
    def epe(flow: torch.Tensor, truth: torch.Tensor, margin: int = 10) -> float:
        """End-point error in pixels, leaving out a border where part of the true match is outside."""
        return float(sf.end_point_error(flow, truth, margin))

    @classmethod
    def local_match_epe(cls, image1: torch.Tensor, image2: torch.Tensor, truth: torch.Tensor, radius: int) -> float:
        """The end-point error of ``local_match`` on two ``(C, H, W)`` images."""
        return cls.epe(sf.local_match(*cls.descriptor_pair(image1, image2), radius)[0][0], truth)

    @staticmethod
    def descriptor_pair(image1: torch.Tensor, image2: torch.Tensor, cell_size: int = 3):
        """The ``(1, D, H, W)`` descriptors of two ``(C, H, W)`` images (the matcher's cell size)."""
        descriptors = sf.sift_flow_descriptor(torch.stack([image1, image2]), cell_size=cell_size)
        return descriptors[:1], descriptors[1:]
