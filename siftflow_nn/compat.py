"""``SiftFlowTorch``: a drop-in for the sift-flow-gpu package's class, built on SIFTFlowDescriptor.

Differences from the old package, on purpose:

- ``cuda=True`` without a GPU falls back to the CPU with a warning (the old one printed);
- ``fp16=True`` on the CPU computes in bfloat16 (CPUs run it; float16 they mostly emulate), with a
  warning saying so once, at construction;
- a result is never overwritten: the old package returned its internal buffer, so the next call
  silently changed earlier results. On the CPU, where a fresh output costs a third of the call in
  page faults (``benchmarks/bench_compat.py``), the previous output's memory is recycled only once
  nothing refers to it any more (no tensor, view or NumPy array); on a GPU the caching allocator
  already makes fresh outputs free;
- 2-D grayscale arrays are accepted; images of different shapes raise a ValueError naming the
  first mismatching index and both shapes;
- the last rows and columns are correct (the old port read zeros there, an align_corners bug).
"""

import sys
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from siftflow_nn.descriptor import SIFTFlowDescriptor, output_dtype, sift_flow_descriptor

__all__ = ["SiftFlowTorch"]


class SiftFlowTorch:
    """Dense SIFT Flow descriptors of lists of images, with the sift-flow-gpu API.

    Args:
        cell_size: cell size in pixels. Default 2.
        step_size: sampling step. Default 1.
        is_boundary_included: keep the image border. Default ``True``.
        num_bins: orientation bands. Default 8.
        cuda: run on the GPU when there is one (else the CPU, with a warning). Default ``True``.
        fp16: half precision: float16 autocast on CUDA, bfloat16 on the CPU. Default ``False``.
        return_numpy: return a NumPy array instead of a tensor. Default ``False``.

    Example:
        >>> import numpy as np
        >>> sift_flow = SiftFlowTorch(cuda=False)
        >>> images = [np.random.randint(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(2)]
        >>> sift_flow.extract_descriptor(images).shape
        torch.Size([2, 128, 20, 30])
    """

    def __init__(
        self,
        cell_size: int = 2,
        step_size: int = 1,
        is_boundary_included: bool = True,
        num_bins: int = 8,
        cuda: bool = True,
        fp16: bool = False,
        return_numpy: bool = False,
    ) -> None:
        self.descriptor = SIFTFlowDescriptor(cell_size, step_size, is_boundary_included, num_bins)
        if cuda and not torch.cuda.is_available():
            warnings.warn("SiftFlowTorch: cuda=True but no CUDA GPU is available; running on the CPU", stacklevel=2)
            cuda = False
        self.device = torch.device("cuda" if cuda else "cpu")
        self.descriptor.to(self.device)
        self.half_dtype: torch.dtype | None = None
        if fp16:
            self.half_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
            if self.device.type == "cpu":
                warnings.warn("SiftFlowTorch: fp16=True on the CPU computes in bfloat16", stacklevel=2)
        self.return_numpy = return_numpy
        self._recycled = _RecycledMemory()

    def extract_descriptor(self, images: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor | np.ndarray:
        """Descriptors of a list of H x W x C (or H x W) images with values in [0, 255].

        Args:
            images: uint8 or float arrays (or tensors), all of one shape.

        Returns:
            ``N x 16*num_bins x H' x W'``: a tensor on the chosen device, or a NumPy array with
            ``return_numpy``; float32, or float16 / bfloat16 with ``fp16`` (NumPy gets float32 for
            bfloat16, which it lacks). Equal to ``SIFTFlowDescriptor(...)(images / 255)``.
        """
        batch = self._to_batch(images)
        with torch.no_grad():
            if self.half_dtype is None:
                descriptors = self._describe(batch)
            else:
                with torch.autocast(self.device.type, dtype=self.half_dtype):
                    descriptors = self._describe(batch)
        if not self.return_numpy:
            return descriptors
        if descriptors.dtype == torch.bfloat16:
            descriptors = descriptors.float()
        return descriptors.cpu().numpy()

    def _describe(self, batch: torch.Tensor) -> torch.Tensor:
        """The descriptor module's output, on the CPU written into the last output's memory if free."""
        if self.device.type != "cpu":
            return self.descriptor(batch)
        options = self.descriptor
        height, width = options.output_size(batch.shape[2], batch.shape[3])
        shape = (batch.shape[0], options.descriptor_dim, height, width)
        buffer = self._recycled.tensor(shape, output_dtype(batch))
        return sift_flow_descriptor(
            batch, options.cell_sizes, options.step_size, options.include_boundary, options.num_bins, out=buffer
        )

    def _to_batch(self, images: Sequence[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Stack the images into a ``N x C x H x W`` float32 tensor in [0, 1] on the device."""
        if isinstance(images, (np.ndarray, torch.Tensor)) or not isinstance(images, Sequence):
            raise TypeError(f"images must be a list of H x W x C arrays, got {type(images).__name__}")
        if len(images) == 0:
            raise ValueError("images must not be empty")
        arrays = [self._as_array(image, index) for index, image in enumerate(images)]
        for index, array in enumerate(arrays[1:], start=1):
            if array.shape != arrays[0].shape:
                raise ValueError(
                    f"all images must have the same shape: images[{index}] is {array.shape}, "
                    f"images[0] is {arrays[0].shape}"
                )
        batch = torch.from_numpy(np.stack(arrays)).to(self.device)
        if batch.dim() == 3:  # grayscale H x W arrays
            batch = batch[..., None]
        return batch.permute(0, 3, 1, 2).float().div_(255.0)

    @staticmethod
    def _as_array(image: np.ndarray | torch.Tensor, index: int) -> np.ndarray:
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"images[{index}] must be an H x W x C or H x W array, got shape {array.shape}")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise TypeError(f"images[{index}] must hold numbers in [0, 255], got dtype {array.dtype}")
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
            raise ValueError(
                f"images[{index}] has shape {array.shape}, which looks like C x H x W; SiftFlowTorch takes "
                f"H x W x C images, as sift-flow-gpu did: pass image.permute(1, 2, 0) (or .transpose(1, 2, 0))"
            )
        return array


class _RecycledMemory:
    """The last output's memory, handed out again once nothing else refers to it (CPU only).

    The memory is a NumPy byte array that the output tensor is built on: torch keeps one reference
    to the array for as long as any tensor, view or NumPy array uses that memory. When ours is the
    only reference left (``sys.getrefcount``, public and exact under the GIL), the caller has
    dropped every trace of the earlier result and the memory can be written again.
    """

    def __init__(self) -> None:
        self._bytes: np.ndarray | None = None

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        size = torch.Size(shape).numel() * dtype.itemsize
        # References: our attribute and getrefcount's own argument; a third one is torch's.
        if self._bytes is None or self._bytes.nbytes != size or sys.getrefcount(self._bytes) > 2:
            self._bytes = np.empty(size, np.uint8)
        return torch.from_numpy(self._bytes).view(dtype).view(shape)
