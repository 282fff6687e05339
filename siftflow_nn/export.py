"""Exporting modules of this package: torch.export with dynamic shapes, and ONNX (optional extra).

``torch.jit.script``, ``torch.jit.trace`` and ``torch.compile(fullgraph=True)`` work on the modules
directly; the helpers here add what those need but plain calls lack: dynamic batch, height and
width for every image input, and clear errors when the ONNX tooling is missing.
"""

import inspect
import os
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.export import Dim

from siftflow_nn._checks import describe_value
from siftflow_nn.io import atomic_path

__all__ = ["export_onnx", "export_program", "run_onnx"]

MIN_OPSET = 18  # the dynamo-based ONNX exporter's first opset
INSTALL_HINT = "pip install 'siftflow_nn[export]' (onnx, onnxscript and onnxruntime)"


def _example_inputs(
    module: nn.Module, example: torch.Tensor | Sequence[torch.Tensor] | None
) -> tuple[torch.Tensor, ...]:
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if example is None:
        required = [
            parameter.name
            for parameter in inspect.signature(module.forward).parameters.values()
            if parameter.default is inspect.Parameter.empty
            and parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        if len(required) != 1:
            raise ValueError(
                f"{type(module).__name__}.forward takes {len(required)} inputs ({', '.join(required)}): pass "
                f"example=(...) with one B x C x H x W tensor for each"
            )
        example = torch.rand(2, 3, 64, 64)  # sizes of 1 would be specialised: batch 2
    inputs = (example,) if isinstance(example, torch.Tensor) else tuple(example)
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
            raise ValueError(f"example[{index}] must be a B x C x H x W tensor, got {describe_value(tensor)}")
    return inputs


def _dynamic_shapes(inputs: tuple[torch.Tensor, ...], min_size: int, max_size: int) -> tuple[dict[int, Dim], ...]:
    """Batch, height and width dynamic and shared by all inputs (the modules need equal sizes)."""
    batch = Dim("batch", min=1, max=4096)
    height = Dim("height", min=min_size, max=max_size)
    width = Dim("width", min=min_size, max=max_size)
    return tuple({0: batch, 2: height, 3: width} for _ in inputs)


def export_program(
    module: nn.Module,
    example: torch.Tensor | Sequence[torch.Tensor] | None = None,
    min_size: int = 16,
    max_size: int = 16384,
) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``module`` with dynamic batch, height and width (channels stay fixed).

    Sizes enter the descriptor through floor divisions by the step (``H // step``), which symbolic
    shapes cannot always bound; such facts become run-time assertions instead of failed guards.

    Args:
        module: the module to export, e.g. a :class:`~siftflow_nn.SIFTFlowDescriptor`.
        example: one example input, or a sequence of them (default: ``2 x 3 x 64 x 64`` images;
            a size of 1 would be specialised, not kept dynamic).
        min_size, max_size: the range of heights and widths the program accepts.

    Example:
        >>> program = export_program(sf.SIFTFlowDescriptor(step_size=2))
        >>> program.module()(torch.rand(3, 3, 40, 50)).shape
        torch.Size([3, 128, 20, 25])
    """
    inputs = _example_inputs(module, example)
    return torch.export.export(
        module,
        inputs,
        dynamic_shapes=_dynamic_shapes(inputs, min_size, max_size),
        prefer_deferred_runtime_asserts_over_guards=True,
    )


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike[str],
    example: torch.Tensor | Sequence[torch.Tensor] | None = None,
    opset_version: int = MIN_OPSET,
    min_size: int = 16,
    max_size: int = 16384,
) -> None:
    """Write ``module`` as an ONNX file with dynamic batch, height and width.

    Uses the dynamo-based ``torch.onnx.export``; needs the ``export`` extra (onnx, onnxscript). The
    file is written atomically: an interrupted export leaves no partial file. The channel count is
    the example's (3 by default): the descriptor's choice of the strongest channel is a loop over
    the channels, unrolled in the graph; export with ``example=torch.rand(2, 1, 64, 64)`` for gray
    images.

    Args:
        module: the module to export (a descriptor, a loss, or a model containing them).
        path: where to write the ``.onnx`` file.
        example: example input(s), as in :func:`export_program`.
        opset_version: ONNX opset, at least 18.
        min_size, max_size: the range of heights and widths the model accepts.

    Raises:
        ImportError: onnx or onnxscript is not installed (says what to install).
        ValueError: an unsupported opset, or an example that is not an image batch.
    """
    if opset_version < MIN_OPSET:
        raise ValueError(f"opset_version must be at least {MIN_OPSET} (the dynamo-based exporter), got {opset_version}")
    inputs = _example_inputs(module, example)
    for package in ("onnx", "onnxscript"):
        try:
            __import__(package)
        except ImportError as error:
            raise ImportError(f"export_onnx needs {package}: {INSTALL_HINT}") from error
    path = os.fspath(path)
    with warnings.catch_warnings():
        # Only the exporter's own remarks: training mode (these modules have no train-only
        # behaviour) and a torch-internal deprecation. Anything else the user should see.
        warnings.filterwarnings("ignore", message="Exporting a model while it is in training mode")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated", category=FutureWarning)
        program = torch.onnx.export(
            module,
            inputs,
            dynamo=True,
            dynamic_shapes=_dynamic_shapes(inputs, min_size, max_size),
            opset_version=opset_version,
            verbose=False,
        )
    with atomic_path(path) as temporary:
        program.save(os.fspath(temporary))


def run_onnx(path: str | os.PathLike[str], *inputs: torch.Tensor) -> list[torch.Tensor]:
    """Run an ONNX file with onnxruntime on CPU tensors; returns its outputs as tensors.

    Raises:
        ImportError: onnxruntime is not installed (says what to install).
    """
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(f"run_onnx needs onnxruntime: {INSTALL_HINT}") from error
    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    specs = session.get_inputs()
    if len(inputs) != len(specs):
        raise ValueError(f"{path} takes {len(specs)} input(s), got {len(inputs)}")
    for spec, tensor in zip(specs, inputs):
        for axis, (expected, got) in enumerate(zip(spec.shape, tensor.shape)):
            if isinstance(expected, int) and expected != got:
                what = f"{expected} channels" if axis == 1 else f"size {expected} along axis {axis}"
                raise ValueError(
                    f"{path}: input {spec.name!r} was exported with {what}, got {got}; "
                    f"export again with an example of that shape"
                )
    feeds = {spec.name: tensor.detach().cpu().numpy() for spec, tensor in zip(specs, inputs)}
    return [torch.from_numpy(output) for output in session.run(None, feeds)]
