"""Pictures of flows and descriptors, and the Middlebury ``.flo`` flow format."""

import os

import numpy as np
import torch

from siftflow_nn._checks import describe_value
from siftflow_nn.io import atomic_path, image_to_uint8

__all__ = ["descriptor_to_color", "flow_to_color", "picture_grid", "read_flo", "write_flo"]

FLO_MAGIC = 202021.25  # "PIEH" read as a little-endian float


def _color_wheel() -> np.ndarray:
    """The Middlebury colour wheel (Baker et al., 2011): 55 hues, red-yellow-green-cyan-blue-magenta."""
    red, yellow, green, cyan, blue, magenta = (
        (255, 0, 0),
        (255, 255, 0),
        (0, 255, 0),
        (0, 255, 255),
        (0, 0, 255),
        (255, 0, 255),
    )
    segments = [
        (15, red, yellow),
        (6, yellow, green),
        (4, green, cyan),
        (11, cyan, blue),
        (13, blue, magenta),
        (6, magenta, red),
    ]
    colors = []
    for count, start, end in segments:
        for index in range(count):
            fraction = index / count
            colors.append([s + (e - s) * fraction for s, e in zip(start, end)])
    return np.asarray(colors, dtype=np.float64)


def flow_to_color(flow: torch.Tensor | np.ndarray, max_flow: float | None = None) -> torch.Tensor:
    """Colour-code a ``(2, H, W)`` flow (x then y) as a ``(3, H, W)`` image in [0, 1], Middlebury style.

    Hue gives the direction, saturation the magnitude relative to ``max_flow`` (default: the
    largest magnitude in the flow); white is no motion. NaN or infinite vectors are black. The
    colours are those of 8-bit pictures (multiples of 1 / 255), like ``descriptor_to_color``'s
    layout: ``write_image`` and ``picture_grid`` take both.

    Example:
        >>> flow = torch.zeros(2, 4, 5)
        >>> flow[0, :, 3:] = 2.0
        >>> image = flow_to_color(flow)
        >>> image.shape, image[:, 0, 0].tolist(), image[:, 0, 4].tolist()
        (torch.Size([3, 4, 5]), [1.0, 1.0, 1.0], [1.0, 0.0, 0.0])
    """
    array = flow.detach().cpu().double().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow, np.float64)
    if array.ndim != 3 or array.shape[0] != 2:
        raise ValueError(f"flow must have shape 2 x H x W, got {array.shape}")
    if max_flow is not None and (isinstance(max_flow, bool) or not max_flow > 0 or not np.isfinite(max_flow)):
        raise ValueError(f"max_flow must be a positive number (the magnitude of full saturation), got {max_flow!r}")
    u, v = array
    finite = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(finite, u, 0), np.where(finite, v, 0)
    radius = np.hypot(u, v)
    scale = max_flow if max_flow is not None else float(radius.max(initial=0.0))
    if scale > 0:
        radius, u, v = radius / scale, u / scale, v / scale
    wheel = _color_wheel()
    count = len(wheel)
    angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]
    position = (angle + 1) / 2 * (count - 1)
    low = np.floor(position).astype(int)
    high = (low + 1) % count
    fraction = (position - low)[..., None]
    color = ((1 - fraction) * wheel[low] + fraction * wheel[high]) / 255.0
    saturation = np.clip(radius, 0, 1)[..., None]
    color = 1 - saturation * (1 - color)
    color[radius > 1] *= 0.75  # beyond max_flow: darker, as in the reference code
    color[~finite] = 0
    return torch.from_numpy(np.round(color * 255).transpose(2, 0, 1) / 255).float()


def descriptor_to_color(descriptor: torch.Tensor) -> torch.Tensor:
    """Show a ``(D, H, W)`` descriptor image as colours: its first three principal components.

    As Ce Liu's ``showColorSIFT``: project every descriptor on the three leading principal
    directions of the image's descriptors, then stretch each component to [0, 1].

    Returns:
        ``(3, H, W)`` float tensor in [0, 1].

    Example:
        >>> sf.viz.descriptor_to_color(torch.rand(128, 6, 7)).shape
        torch.Size([3, 6, 7])
    """
    if not isinstance(descriptor, torch.Tensor) or descriptor.dim() != 3:
        raise ValueError(f"descriptor must be a D x H x W tensor, got {describe_value(descriptor)}")
    channels, height, width = descriptor.shape
    pixels = descriptor.detach().reshape(channels, -1)
    finite = torch.isfinite(pixels).all(dim=0)  # pixels with a NaN or inf are shown black
    # The principal directions of a few thousand random pixels are those of the whole image: the
    # float64 work stays that small, and the projection runs in chunks (no float64 copy of it all).
    order = torch.randperm(pixels.shape[1], generator=torch.Generator().manual_seed(0))
    sample = pixels[:, order[finite[order]][:20000]].T.double()
    if sample.shape[0] == 0:
        return torch.zeros(3, height, width)
    mean = sample.mean(dim=0)
    _, _, directions = torch.linalg.svd(sample - mean, full_matrices=False)
    directions = directions[: min(3, channels)]
    components = torch.zeros(3, pixels.shape[1])
    for start in range(0, pixels.shape[1], 1 << 16):
        chunk = pixels[:, start : start + (1 << 16)].T.double() - mean
        components[: directions.shape[0], start : start + (1 << 16)] = (chunk @ directions.T).T.float()
    components[:, ~finite] = float("nan")
    low = torch.nan_to_num(components, nan=float("inf")).amin(dim=1, keepdim=True)
    high = torch.nan_to_num(components, nan=float("-inf")).amax(dim=1, keepdim=True)
    components = ((components - low) / (high - low).clamp_min(1e-12)).nan_to_num_(0.0)
    return components.reshape(3, height, width)


def picture_grid(pictures: dict[str, np.ndarray | torch.Tensor], columns: int = 3) -> np.ndarray:
    """Pictures of one size side by side, ``columns`` per row, each captioned with its key.

    Args:
        pictures: caption -> ``(3, H, W)`` tensor in [0, 1] or ``H x W x 3`` uint8 array.
        columns: pictures per row.

    Returns:
        ``H_grid x W_grid x 3`` uint8 array (white background, 2-pixel gaps, 14-pixel captions).

    Example:
        >>> picture_grid({"a": torch.zeros(3, 8, 10), "b": torch.ones(3, 8, 10)}, columns=2).shape
        (22, 22, 3)
    """
    from PIL import Image, ImageDraw

    arrays = [image_to_uint8(p) if isinstance(p, torch.Tensor) else np.asarray(p) for p in pictures.values()]
    height, width = arrays[0].shape[:2]
    if any(array.shape != (height, width, 3) for array in arrays):
        raise ValueError(f"pictures must all be {height} x {width} x 3, got {[a.shape for a in arrays]}")
    caption, gap = 14, 2
    rows = (len(arrays) + columns - 1) // columns
    grid = np.full((rows * (height + caption), columns * (width + gap) - gap, 3), 255, np.uint8)
    canvas = Image.fromarray(grid)
    draw = ImageDraw.Draw(canvas)
    for index, (name, array) in enumerate(zip(pictures, arrays)):
        top, left = (index // columns) * (height + caption), (index % columns) * (width + gap)
        canvas.paste(Image.fromarray(array), (left, top + caption))
        draw.text((left + 2, top + 1), name, fill=(0, 0, 0))
    return np.asarray(canvas)


def write_flo(path: str | os.PathLike[str], flow: torch.Tensor | np.ndarray) -> None:
    """Write a ``(2, H, W)`` flow in the Middlebury ``.flo`` format, atomically."""
    array = flow.detach().cpu().numpy() if isinstance(flow, torch.Tensor) else np.asarray(flow)
    if array.ndim != 3 or array.shape[0] != 2:
        raise ValueError(f"flow must have shape 2 x H x W, got {array.shape}")
    _, height, width = array.shape
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.asarray([FLO_MAGIC], "<f4").tofile(handle)
        np.asarray([width, height], "<i4").tofile(handle)
        np.ascontiguousarray(array.transpose(1, 2, 0), dtype="<f4").tofile(handle)


def read_flo(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read a Middlebury ``.flo`` file as a ``(2, H, W)`` float32 tensor.

    Raises:
        ValueError: the file is not a ``.flo`` file or is truncated (the message names it).
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or np.frombuffer(header[:4], "<f4")[0] != FLO_MAGIC:
            raise ValueError(f"{path}: not a Middlebury .flo file (bad magic number)")
        width, height = (int(value) for value in np.frombuffer(header[4:], "<i4"))
        data = np.fromfile(handle, "<f4")
    if width <= 0 or height <= 0 or data.size != 2 * width * height:
        raise ValueError(f"{path}: truncated or corrupt .flo file ({width} x {height} expected)")
    return torch.from_numpy(data.reshape(height, width, 2).transpose(2, 0, 1).copy())
