"""Reading images into [0, 1] tensors, and writing files atomically (temporary name, then rename)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from siftflow_nn._checks import describe_value

__all__ = [
    "ImageReadError",
    "OutputError",
    "atomic_path",
    "image_to_uint8",
    "printable_name",
    "read_image",
    "write_image",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageReadError(ValueError):
    """A file that is missing, unreadable or not an image; the message names the file."""


class OutputError(OSError):
    """An output that cannot be written (missing folder, no permission, a folder in the way)."""


def read_image(
    path: str | os.PathLike[str],
    max_pixels: int | None = None,
    *,
    uint8: bool = False,
    orient: bool = True,
    uint16: bool = False,
) -> torch.Tensor:
    """Read an image file as a ``(C, H, W)`` float32 tensor in ``[0, 1]`` (or uint8 0..255).

    RGB and grayscale images keep their 3 or 1 channels; an alpha channel is dropped; palette images
    become RGB; 16-bit images are scaled by 1/65535, 8-bit ones by 1/255. An EXIF orientation is
    applied, as image viewers do (a portrait photo stored sideways reads upright).

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this (checked on the header, before
            decoding); Pillow's own decompression-bomb limit applies in any case.
        uint8: return the 8-bit values as they are (16-bit ones as MATLAB's ``im2uint8``:
            ``round(v / 257)``), as MATLAB's ``imread`` gives them to a script.
        orient: apply the EXIF orientation (MATLAB's ``imread`` does not).
        uint16: with ``uint8``, 16-bit images (PNG gray, RGB and RGBA, gray TIFF) come as
            ``torch.uint16`` values as they are, as MATLAB's ``imread`` gives them, not converted
            to 8 bits (Pillow reads 16-bit colour PNGs at 8 bits: those are decoded by kornia_rs,
            without an EXIF orientation).

    Raises:
        ImageReadError: the file is missing, unreadable, not an image, or too large (the message
            names it).
    """
    path = Path(path)
    if uint16 and not uint8:
        raise ValueError("uint16=True reads 16-bit images as MATLAB does: it needs uint8=True for the 8-bit ones")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(
                    f"{path}: {width} x {height} = {width * height} pixels, over the limit of {max_pixels}"
                )
            if width * height == 0:
                raise ImageReadError(f"{path}: an empty image ({width} x {height})")
            if uint16 and image.format == "PNG" and _png_16_bit_colour(path):
                array = _read_16_bit_colour(path)
            else:
                image.load()
                array = _to_array(ImageOps.exif_transpose(image) if orient else image, uint8, uint16)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a directory, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied") from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"{path}: too many pixels to decode safely ({error})") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from None
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1).contiguous()


def _png_16_bit_colour(path: Path) -> bool:
    """Whether a PNG holds 16-bit colour (RGB, RGBA, gray with alpha), which Pillow reads at 8 bits."""
    with open(path, "rb") as handle:
        header = handle.read(26)  # signature, IHDR's length and type, width, height, depth, colour type
    return len(header) == 26 and header[12:16] == b"IHDR" and header[24] == 16 and header[25] in (2, 4, 6)


def _read_16_bit_colour(path: Path) -> np.ndarray:
    """H x W x C uint16, the alpha channel dropped."""
    import kornia_rs  # kornia's own image codecs

    try:
        array = np.asarray(kornia_rs.io.read_image(str(path)))
    except Exception as error:  # kornia_rs raises plain exceptions of its own
        raise ImageReadError(f"{path}: a 16-bit PNG that cannot be decoded at 16 bits ({error})") from None
    channels = {1: 1, 2: 1, 3: 3, 4: 3}[array.shape[2]]
    return np.ascontiguousarray(array[..., :channels], dtype=np.uint16)


def _to_array(image: Image.Image, uint8: bool = False, uint16: bool = False) -> np.ndarray:
    """H x W x C float32 in [0, 1] (or uint8, or with ``uint16`` 16-bit gray as uint16) from any
    Pillow mode we accept."""
    mode = image.mode
    if uint16 and mode.startswith("I;16"):
        return np.array(image, dtype=np.uint16)[..., None]
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        unit = np.clip(data, 0, scale) / scale
        return (np.floor(unit * 255 + 0.5).astype(np.uint8) if uint8 else unit.astype(np.float32))[..., None]
    if mode == "F":
        unit = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        return (np.floor(unit.astype(np.float64) * 255 + 0.5).astype(np.uint8) if uint8 else unit)[..., None]
    if mode in ("1", "L", "LA"):
        image = image.convert("L")
    elif mode != "RGB":  # RGBA, P, CMYK, YCbCr, ...: alpha dropped, palette expanded
        image = image.convert("RGB")
    array = np.array(image, dtype=np.uint8)  # a copy that torch may own (asarray's is read-only)
    if array.ndim == 2:
        array = array[..., None]
    return array if uint8 else array.astype(np.float32) / 255.0


def image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """A ``(C, H, W)`` tensor in [0, 1] as an H x W x C (or H x W) uint8 array for saving."""
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(f"image must be a C x H x W tensor with C = 1, 3 or 4, got {describe_value(image)}")
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return array[..., 0] if array.shape[2] == 1 else array


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success flush it to disk and rename it to
    ``path``, else delete it.

    Readers never see a half-written file, a failed write leaves nothing behind, and the file gets
    the mode a plain ``open`` would give it (the process's umask applied by the system).

    Raises:
        OutputError: the folder is missing or cannot be written (the message names ``path``).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise OutputError(f"{path}: the folder {path.parent} does not exist") from None
        # a folder that holds no new files (/proc, /sys): its entries exist, but none can be made
        raise OutputError(f"{path}: no file can be created in {path.parent} (No such file or directory)") from None
    except OSError as error:
        raise OutputError(f"{path}: cannot write here ({error.strerror})") from None
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def printable_name(name: str) -> str:
    """A file name as text any UTF-8 file can hold: the bytes of a name that is not UTF-8 (which
    Python decodes to lone surrogates, and UTF-8 writers refuse) become ``\\xNN``.

    Example:
        >>> printable_name(b"caf\\xe9_1 copy_rec.png".decode("utf-8", "surrogateescape"))
        'caf\\\\xe9_1 copy_rec.png'
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def write_image(path: str | os.PathLike[str], image: np.ndarray | torch.Tensor) -> None:
    """Write an image atomically; a tensor is ``(C, H, W)`` in [0, 1], an array H x W (x C) uint8."""
    array = image_to_uint8(image) if isinstance(image, torch.Tensor) else image
    path = Path(path)
    format_name = _format_for(path)
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format=format_name)


def _format_for(path: Path) -> str:
    """The Pillow format an extension names (PNG where there is none)."""
    if not path.suffix:
        return "PNG"
    format_name = Image.registered_extensions().get(path.suffix.lower())
    if format_name is None or format_name not in Image.SAVE:
        raise OutputError(f"{path}: Pillow writes no image format with the extension {path.suffix}")
    return format_name
