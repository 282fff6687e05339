"""Reading images into [0, 1] tensors, and writing files atomically (temporary name, then rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageReadError", "atomic_path", "image_to_uint8", "read_image", "write_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not an image; the message names the file."""


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an image file as a ``(C, H, W)`` float32 tensor in ``[0, 1]``.

    RGB and grayscale images keep their 3 or 1 channels; an alpha channel is dropped; palette images
    become RGB; 16-bit images are scaled by 1/65535, 8-bit ones by 1/255.

    Raises:
        ImageReadError: the file is missing, unreadable or not an image (the message names it).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            array = _to_array(image)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from None
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1).contiguous()


def _to_array(image: Image.Image) -> np.ndarray:
    """H x W x C float32 in [0, 1] from any Pillow mode we accept."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        return (np.clip(data, 0, scale) / scale).astype(np.float32)[..., None]
    if mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)[..., None]
    if mode in ("1", "L", "LA"):
        image = image.convert("L")
    elif mode != "RGB":  # RGBA, P, CMYK, YCbCr, ...: alpha dropped, palette expanded
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return array.astype(np.float32) / 255.0


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """A ``(C, H, W)`` tensor in [0, 1] as an H x W x C (or H x W) uint8 array for saving."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[2] == 1 else array


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    Readers never see a half-written file, and a failed write leaves nothing behind.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        # mkstemp creates the file private (0600); give it the mode a plain open() would.
        os.chmod(temporary_path, 0o666 & ~_current_umask())
        os.replace(temporary_path, path)
    finally:
        temporary_path.unlink(missing_ok=True)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_image(path: str | os.PathLike[str], image: np.ndarray | torch.Tensor) -> None:
    """Write an image atomically; a tensor is ``(C, H, W)`` in [0, 1], an array H x W (x C) uint8."""
    array = image_to_uint8(image) if isinstance(image, torch.Tensor) else image
    path = Path(path)
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format=_format_for(path))


def _format_for(path: Path) -> str:
    extension = path.suffix.lower()
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}.get(extension, "PNG")
