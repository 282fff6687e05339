"""Every input either works or says why: option types, odd tensors, outputs, and no process-wide side effects."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import siftflow_nn as sf
from siftflow_nn import SiftFlowTorch
from tests.base import BaseTester


def _images(count=2, shape=(24, 30, 3), seed=0):
    generator = np.random.default_rng(seed)
    return [generator.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


# What the caller still holds after the first call: the result, a view of it, a NumPy array on it.
HOLDERS = {
    "tensor": lambda result: result,
    "view": lambda result: result[1, 5:],
    "numpy": lambda result: result.numpy()[0],
    "unbound": lambda result: list(result),
}


class TestSiftFlowTorch(BaseTester):
    def test_compat_recycles_memory_with_public_means_only(self):
        import siftflow_nn.compat as compat

        source = Path(compat.__file__).read_text()
        assert "torch._C" not in source and "_storage_Use_Count" not in source
        sift_flow = sf.SiftFlowTorch(cuda=False)
        images = [np.random.randint(0, 256, (20, 24, 3), dtype=np.uint8)]
        first = sift_flow.extract_descriptor(images)
        view = first[:, :4].numpy()  # a NumPy view of a view still holds the memory
        pointer = first.data_ptr()
        del first
        second = sift_flow.extract_descriptor(images)
        assert second.data_ptr() != pointer
        pointer = second.data_ptr()
        del second, view
        assert sift_flow.extract_descriptor(images).data_ptr() == pointer  # released: recycled

    def test_equals_the_descriptor_on_images_over_255(self):
        images = _images()
        out = SiftFlowTorch(cuda=False).extract_descriptor(images)
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
        self.assert_close(out, sf.sift_flow_descriptor(batch), rtol=0, atol=0)

    def test_options_are_passed_through_and_numpy_is_returned(self):
        images = [image.astype(np.float64) for image in _images(shape=(40, 44, 3))]
        sift_flow = SiftFlowTorch(
            cell_size=3, step_size=2, is_boundary_included=False, num_bins=4, cuda=False, return_numpy=True
        )
        out = sift_flow.extract_descriptor(images)
        batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
        expected = sf.sift_flow_descriptor(batch, cell_size=3, step_size=2, include_boundary=False, num_bins=4)
        assert isinstance(out, np.ndarray) and out.shape == (2, 64, 14, 16)
        np.testing.assert_array_equal(out, expected.numpy())

    @pytest.mark.parametrize("holder", HOLDERS)
    def test_results_are_never_overwritten_by_the_next_call(self, holder):
        sift_flow = SiftFlowTorch(cuda=False)
        first_images, second_images = _images(seed=1), _images(seed=2)
        held = HOLDERS[holder](sift_flow.extract_descriptor(first_images))
        kept = [torch.as_tensor(part).clone() for part in (held if isinstance(held, list) else [held])]
        second = sift_flow.extract_descriptor(second_images)
        assert not torch.equal(second, sift_flow.extract_descriptor(first_images))
        now = [torch.as_tensor(part) for part in (held if isinstance(held, list) else [held])]
        assert all(torch.equal(before, after) for before, after in zip(kept, now))

    def test_released_results_have_their_memory_recycled_on_the_cpu(self):
        # A fresh output costs page faults on the CPU (benchmarks/bench_compat.py): a loop that drops
        # each result before the next call writes every result into the same memory, and the values
        # are those of a fresh computation.
        sift_flow = SiftFlowTorch(cuda=False)
        images = [_images(seed=seed) for seed in range(3)]
        addresses = []
        for batch in images:
            result = sift_flow.extract_descriptor(batch)
            addresses.append(result.data_ptr())
            expected = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() / 255
            assert torch.equal(result, sf.sift_flow_descriptor(expected))
            del result
        assert addresses[0] == addresses[1] == addresses[2]
        # Another shape takes new memory, and is right too.
        other = sift_flow.extract_descriptor(_images(count=3, shape=(20, 26, 3)))
        assert other.shape == (3, 128, 20, 26)

    def test_grayscale_two_dimensional_arrays(self):
        images = [image[..., 0] for image in _images()]
        out = SiftFlowTorch(cuda=False).extract_descriptor(images)
        batch = torch.from_numpy(np.stack(images))[:, None].float() / 255
        self.assert_close(out, sf.sift_flow_descriptor(batch))

    def test_one_pixel_wide_images_are_correct_not_zeros(self):
        column = np.linspace(0, 255, 12).reshape(12, 1)
        out = SiftFlowTorch(cuda=False).extract_descriptor([column, column[::-1].copy()])
        assert out.shape == (2, 128, 12, 1) and out.abs().sum() > 0
        # A vertical ramp has only y gradients: +y in the first image, -y in the second.
        assert not torch.equal(out[0], out[1])

    def test_cuda_without_gpu_warns_and_runs_on_cpu(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.warns(UserWarning, match="no CUDA GPU is available; running on the CPU"):
            sift_flow = SiftFlowTorch(cuda=True)
        assert sift_flow.device.type == "cpu"
        assert sift_flow.extract_descriptor(_images()).device.type == "cpu"

    def test_fp16_on_cpu_uses_bfloat16_and_says_so_once(self):
        with pytest.warns(UserWarning, match="computes in bfloat16") as caught:
            sift_flow = SiftFlowTorch(cuda=False, fp16=True)
        assert len(caught) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no further warning per call
            out = sift_flow.extract_descriptor(_images())
        assert out.dtype == torch.bfloat16
        reference = SiftFlowTorch(cuda=False).extract_descriptor(_images())
        assert (out.float() - reference).abs().max() <= 2**-8

    def test_mismatched_shapes_name_the_first_offending_index(self):
        images = _images(count=3)
        images[2] = images[2][:20]
        with pytest.raises(ValueError, match=r"images\[2\] is \(20, 30, 3\), images\[0\] is \(24, 30, 3\)"):
            SiftFlowTorch(cuda=False).extract_descriptor(images)

    @pytest.mark.parametrize(
        ("images", "error", "message"),
        [
            ([], ValueError, "images must not be empty"),
            (np.zeros((2, 8, 8, 3)), TypeError, "images must be a list"),
            ([np.zeros((8,))], ValueError, r"images\[0\] must be an H x W x C or H x W array"),
            ([np.array([["a"]])], TypeError, r"images\[0\] must hold numbers"),
        ],
    )
    def test_bad_input(self, images, error, message):
        with pytest.raises(error, match=message):
            SiftFlowTorch(cuda=False).extract_descriptor(images)

    def test_a_chw_tensor_is_refused_with_the_fix(self):
        with pytest.raises(ValueError, match=r"images\[0\] has shape \(3, 20, 30\), which looks like C x H x W"):
            SiftFlowTorch(cuda=False).extract_descriptor([torch.rand(3, 20, 30)])
