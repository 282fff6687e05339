"""Every input either works or says why: option types, odd tensors, outputs, and no process-wide side effects."""

import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import siftflow_nn as sf
from siftflow_nn.export import export_onnx, export_program, run_onnx
from siftflow_nn.io import OutputError
from tests.base import BaseTester

OPTION_SETS = [
    dict(cell_size=2, step_size=1, include_boundary=True, num_bins=8),
    dict(cell_size=1, step_size=2, include_boundary=False, num_bins=4),
    dict(cell_size=3, step_size=3, include_boundary=True, num_bins=16),
    dict(cell_size=[2, 3], step_size=2, include_boundary=False, num_bins=8),
]


SIZES = [(2, 3, 40, 48), (1, 1, 33, 61), (3, 3, 57, 29)]


def _fresh_process_output(path, image_path, tmp_path):
    """Load a TorchScript file in a Python process that never imports siftflow_nn, run it, save the result."""
    out_path = tmp_path / "out.pt"
    code = (
        "import sys, torch\n"
        f"model = torch.jit.load({str(path)!r})\n"
        f"inputs = torch.load({str(image_path)!r})\n"
        f"torch.save(model(*inputs), {str(out_path)!r})\n"
        "assert not any(name.startswith('siftflow_nn') for name in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=300)
    return torch.load(out_path)


class TestExport(BaseTester):
    def test_export_onnx_explains_what_it_needs(self, tmp_path):
        pytest.importorskip("onnxscript")
        from siftflow_nn.export import export_onnx, run_onnx

        with pytest.raises(ValueError, match=r"SIFTFlowLoss.forward takes 2 inputs \(image1, image2\): pass example="):
            export_onnx(sf.SIFTFlowLoss(), tmp_path / "loss.onnx")
        path = tmp_path / "descriptor.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # nothing of ours is swallowed wholesale any more
            export_onnx(sf.SIFTFlowDescriptor(), path)
        with pytest.raises(ValueError, match="was exported with 3 channels, got 1; export again"):
            run_onnx(path, torch.rand(1, 1, 32, 32))
        with pytest.raises(OutputError, match="does not exist"):
            export_onnx(sf.SIFTFlowDescriptor(), tmp_path / "missing" / "d.onnx")

    @pytest.mark.parametrize("options", OPTION_SETS, ids=str)
    def test_torchscript_matches_eager_at_any_size(self, options):
        module = sf.SIFTFlowDescriptor(**options)
        scripted = self.assert_script_equal(module, torch.rand(SIZES[0]))
        for shape in SIZES[1:]:
            image = torch.rand(shape)
            self.assert_close(scripted(image), module(image), rtol=0, atol=1e-6)

    def test_saved_script_runs_without_the_package(self, tmp_path):
        image1, image2 = torch.rand(2, 3, 30, 34), torch.rand(2, 3, 30, 34)
        models = {
            "descriptor": (sf.SIFTFlowDescriptor(cell_size=[2, 3], step_size=2), (image1,)),
            "loss": (sf.SIFTFlowLoss(metric="cosine"), (image1, image2)),
            "sequential": (
                nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), sf.SIFTFlowDescriptor(), nn.Conv2d(128, 2, 1)),
                (image1,),
            ),
        }
        for name, (model, inputs) in models.items():
            path, input_path = tmp_path / f"{name}.pt", tmp_path / f"{name}_inputs.pt"
            torch.jit.save(torch.jit.script(model), path)
            torch.save(inputs, input_path)
            self.assert_close(_fresh_process_output(path, input_path, tmp_path), model(*inputs), rtol=0, atol=1e-6)

    # A trace records one shape by design: its warnings about shape-dependent Python values say just that.
    @pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:`torch.jit.trace_method`:DeprecationWarning")
    def test_trace_for_a_fixed_shape(self):
        image = torch.rand(2, 3, 32, 40)
        for model, inputs in [
            (sf.SIFTFlowDescriptor(cell_size=[1, 2], step_size=2), (image,)),
            (sf.SIFTFlowLoss(), (image, image.flip(-1))),
            (nn.Sequential(nn.Conv2d(3, 3, 1), sf.SIFTFlowDescriptor()), (image,)),
        ]:
            traced = torch.jit.trace(model, inputs)
            fresh = tuple(torch.rand_like(tensor) for tensor in inputs)
            self.assert_close(traced(*fresh), model(*fresh), rtol=0, atol=1e-6)

    def test_compile_fullgraph_matches_eager(self):
        """Inductor's C++ backend on the CPU; fullgraph=True fails on any graph break.

        One option set and one size: a cold inductor compile costs about a minute on two cores.
        """
        module = sf.SIFTFlowDescriptor()
        compiled = torch.compile(module, fullgraph=True, dynamic=False)
        image = torch.rand(2, 3, 40, 48)
        self.assert_close(compiled(image), module(image), rtol=0, atol=1e-5)

    @pytest.mark.parametrize("options", [OPTION_SETS[0], OPTION_SETS[3]], ids=str)
    def test_torch_export_with_dynamic_shapes(self, options):
        module = sf.SIFTFlowDescriptor(**options)
        program = self.assert_export_equal(module, torch.rand(2, 3, 40, 48))
        for shape in [(1, 3, 64, 64), (3, 3, 65, 67), (2, 3, 33, 90)]:
            image = torch.rand(shape)
            self.assert_close(program.module()(image), module(image), rtol=0, atol=1e-6)

    def test_onnx_runs_in_onnxruntime_at_two_sizes(self, tmp_path):
        pytest.importorskip(
            "onnxruntime", reason="the export extra (pip install 'siftflow_nn[export]') is not installed"
        )
        pytest.importorskip(
            "onnxscript", reason="the export extra (pip install 'siftflow_nn[export]') is not installed"
        )
        module = sf.SIFTFlowDescriptor(cell_size=2, step_size=1)
        path = tmp_path / "descriptor.onnx"
        export_onnx(module, path, torch.rand(1, 3, 32, 40))
        for shape in [(2, 3, 45, 51), (1, 3, 64, 80)]:
            image = torch.rand(shape)
            (out,) = run_onnx(path, image)
            self.assert_close(out, module(image), rtol=0, atol=1e-4)
        assert [p.name for p in tmp_path.iterdir()] == ["descriptor.onnx"]  # no temporary left behind

    def test_export_errors_say_what_to_change(self, tmp_path, monkeypatch):
        with pytest.raises(ValueError, match="opset_version must be at least 18"):
            export_onnx(sf.SIFTFlowDescriptor(), tmp_path / "x.onnx", opset_version=13)
        with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
            export_program(lambda image: image)
        with pytest.raises(ValueError, match=r"example\[0\] must be a B x C x H x W tensor"):
            export_program(sf.SIFTFlowDescriptor(), torch.rand(3, 32, 32))
        monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if the extra were not installed
        with pytest.raises(ImportError, match=r"pip install 'siftflow_nn\[export\]'"):
            export_onnx(sf.SIFTFlowDescriptor(), tmp_path / "x.onnx")
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        with pytest.raises(ImportError, match=r"pip install 'siftflow_nn\[export\]'"):
            run_onnx(tmp_path / "x.onnx", torch.rand(1, 3, 32, 32))
        assert not (tmp_path / "x.onnx").exists()
