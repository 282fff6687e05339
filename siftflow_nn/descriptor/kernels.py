"""The fixed filters of Ce Liu's ``ImageFeature::imSIFT`` (Sobel version), one stage per function.

image -> Sobel gradients -> dominant channel -> orientation bands -> cell maps (the cell filter).

Every filter here is a handful of shifted slices of a replicate-padded tensor rather than a
convolution: the taps are 0 / 1 / 2 / 0.25, and slices are several times faster than a depthwise
``conv2d`` on the CPU (see ``benchmarks/``) while giving bit-identical sums. All functions are
differentiable, TorchScript-able and traceable.
"""

import math

import torch
import torch.nn.functional as F


def orientation_basis(num_bins: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit vectors of the ``num_bins`` orientation bands, ``(cos(2 pi k / n), sin(2 pi k / n))``.

    Args:
        num_bins: number of orientation bands.
        dtype: dtype of the result (computed in float64 first, as the original does).

    Returns:
        Tensor of shape ``(2, num_bins)``: row 0 the cosines, row 1 the sines.

    Example:
        >>> orientation_basis(4).round(decimals=6)
        tensor([[ 1.,  0., -1., -0.],
                [ 0.,  1., -0., -1.]])
    """
    angles = torch.arange(num_bins, dtype=torch.float64) * (2 * math.pi / num_bins)
    basis = torch.stack([angles.cos(), angles.sin()])
    if num_bins % 2 == 0:
        # Band k + n/2 points exactly the opposite way of band k (float64 gives sin(pi) = 1.2e-16,
        # not 0): then its projection is exactly the negated one, which orientation_bands uses.
        basis[:, num_bins // 2 :] = -basis[:, : num_bins // 2]
    return basis.to(dtype)


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision values in float32, others as they are: filters and sums over many channels
    run in float32 at least (cheap for images of a few channels, and for 128-channel distances)."""
    if tensor.dtype == torch.float16 or tensor.dtype == torch.bfloat16:
        return tensor.float()
    return tensor


def smallest_normal(dtype: torch.dtype) -> float:
    """``torch.finfo(dtype).tiny`` of the dtypes the filters run in (float32 or float64), scriptable."""
    return 2.2250738585072014e-308 if dtype == torch.float64 else 1.1754943508222875e-38


DERIVATIVES = ("sobel", "release")


def derivative_radius(derivative: str) -> int:
    """Pixels the derivative filter reaches on each side: Sobel 1, the release's 5-tap filter 2."""
    return 2 if derivative == "release" else 1


def gradients(image: torch.Tensor, derivative: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gx, gy)`` of every channel with the chosen derivative, borders replicated.

    ``"sobel"``: the CPM code base's ``imSIFT`` (the one ``sift-flow-gpu`` ported), integer Sobel.
    ``"release"``: the SIFT flow release's ``mexDenseSIFT`` (DocUNet's evaluation calls it),
    ``[1 -8 0 8 -1] / 12`` along x for gx and along y for gy, no smoothing across.
    """
    radius = derivative_radius(derivative)
    return gradients_valid(F.pad(image, [radius, radius, radius, radius], mode="replicate"), derivative)


def gradients_valid(padded: torch.Tensor, derivative: str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gradients` of an image that already has its replicated border (``derivative_radius``)."""
    if derivative == "release":
        return release_gradients_valid(padded)
    return sobel_gradients_valid(padded)


def release_gradients_valid(padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's 5-tap derivative of an image with a 2-pixel border: ``(H + 4, W + 4)`` -> ``(H, W)``.

    The taps are summed from the left (top), as its ``hfiltering`` does; the middle one is 0.
    """
    taps = [1.0 / 12, -8.0 / 12, 0.0, 8.0 / 12, -1.0 / 12]
    rows, cols = padded[:, :, 2:-2], padded[..., 2:-2]
    width, height = rows.shape[-1] - 4, cols.shape[-2] - 4
    gx = rows[..., 0:width] * taps[0]
    gy = cols[:, :, 0:height] * taps[0]
    for offset in (1, 3, 4):
        gx = gx + rows[..., offset : offset + width] * taps[offset]
        gy = gy + cols[:, :, offset : offset + height] * taps[offset]
    return gx, gy


def sobel_gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised Sobel derivatives of every channel, with replicated borders.

    The original uses the plain integer Sobel kernel (no 1/8 factor); the scale matters because the
    final normalisation divides by ``norm + 0.01``.

    Args:
        image: ``(B, C, H, W)`` float tensor.

    Returns:
        ``(gx, gy)``, each ``(B, C, H, W)``; ``gx`` grows with x (columns), ``gy`` with y (rows).
    """
    return sobel_gradients_valid(F.pad(image, [1, 1, 1, 1], mode="replicate"))


def sobel_gradients_valid(padded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`sobel_gradients` of an image that already has its 1-pixel border: ``(H + 2, W + 2)`` -> ``(H, W)``."""
    # In-place accumulation (add_ saves nothing for autograd) keeps fresh allocations, which cost
    # page faults on the CPU, to one per output.
    dx = padded[..., 2:] - padded[..., :-2]  # (B, C, H + 2, W): central difference along x
    gx = (dx[:, :, :-2] + dx[:, :, 2:]).add_(dx[:, :, 1:-1], alpha=2)  # then [1, 2, 1] along y
    dy = padded[:, :, 2:] - padded[:, :, :-2]
    gy = (dy[..., :-2] + dy[..., 2:]).add_(dy[..., 1:-1], alpha=2)
    return gx, gy


def dominant_gradient(gx: torch.Tensor, gy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep, per pixel, the gradient of the channel with the largest magnitude (first one on ties).

    Args:
        gx: ``(B, C, H, W)`` x derivatives.
        gy: ``(B, C, H, W)`` y derivatives.

    Returns:
        ``(gx, gy)`` of the winning channel, each ``(B, 1, H, W)``.
    """
    squared = (gx * gx).addcmul_(gy, gy)  # orders like the original's magnitudes
    best, best_x, best_y = squared[:, :1], gx[:, :1], gy[:, :1]
    # The original's loop: a later channel wins only if strictly larger, so the first wins ties. Ties
    # are common on 8-bit images, and argmax / max(dim) need not return the first maximum once
    # compiled, so the loop is spelled out. It selects with arithmetic, not bool masks: on the CPU a
    # comparison into a bool tensor and torch.where are about 15x slower than a float op.
    for channel in range(1, gx.shape[1]):
        candidate = squared[:, channel : channel + 1]
        # 1.0 where the candidate is strictly larger, else 0.0 (IEEE subtraction keeps the sign
        # exactly). lerp with a 0 / 1 weight returns one operand exactly, and a NaN in either
        # operand comes through, so that it stays visible downstream.
        wins = (candidate - best).detach().sign().relu_()
        best = torch.maximum(best, candidate)
        best_x = torch.lerp(best_x, gx[:, channel : channel + 1], wins)
        best_y = torch.lerp(best_y, gy[:, channel : channel + 1], wins)
    return best_x, best_y


def orientation_bands(gx: torch.Tensor, gy: torch.Tensor, basis: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Orientation energy ``max(cos_k * ux + sin_k * uy, 0) ** 9 * |g|`` for every band k.

    ``(ux, uy)`` is the unit gradient. The power is taken on the unit projection (in [0, 1]) and only
    then multiplied by the magnitude, so nothing overflows in low precision.

    Args:
        gx: ``(B, 1, H, W)`` dominant x derivative.
        gy: ``(B, 1, H, W)`` dominant y derivative.
        basis: ``(2, num_bins)`` from :func:`orientation_basis`, in the dtype of ``gx``.
        inplace: no autograd: take the power in place, and with an even ``num_bins`` only for
            half of the bands (see :func:`_bands_by_opposite_pairs`).

    Returns:
        ``(B, num_bins, H, W)`` band energies.
    """
    # sqrt has an infinite derivative at 0: clamp to the smallest normal number first (the bands are
    # 0 there anyway because ux = uy = 0). clamp, unlike a where on a bool mask, runs at float-op
    # speed on the CPU; a NaN stays NaN.
    magnitude = (gx * gx).addcmul_(gy, gy).clamp_min_(smallest_normal(gx.dtype)).sqrt_()
    ux, uy = gx / magnitude, gy / magnitude
    if inplace and basis.shape[1] % 2 == 0:
        return _bands_by_opposite_pairs(ux, uy, magnitude, basis)
    # In-place ops here are autograd-safe (mul and addcmul_ do not need their result, relu_ saves
    # its own); each saves a fresh band-sized buffer.
    projection = (ux * basis[0].view(1, -1, 1, 1)).addcmul_(uy, basis[1].view(1, -1, 1, 1)).relu_()
    return _times_power9(projection, magnitude, inplace)


def _times_power9(x: torch.Tensor, magnitude: torch.Tensor, inplace: bool) -> torch.Tensor:
    """``x ** 9 * magnitude``, the original's band exponent, by squaring: the same products either
    way; in place (no autograd) it reuses one buffer."""
    if inplace:
        power = x * x
        power.mul_(power).mul_(power)  # x^8
        return power.mul_(x).mul_(magnitude)
    x2 = x * x
    x4 = x2 * x2
    return x4 * x4 * x * magnitude


def _bands_by_opposite_pairs(
    ux: torch.Tensor, uy: torch.Tensor, magnitude: torch.Tensor, basis: torch.Tensor
) -> torch.Tensor:
    """:func:`orientation_bands` for an even number of bands, without autograd, at half the work.

    Band ``k + n/2`` is band ``k``'s basis vector negated (exactly, see :func:`orientation_basis`),
    so its projection is ``-x`` where band k's is ``x``; an odd power keeps the sign and rounding is
    sign-symmetric, so with ``y = x ** 9 * |g|`` band k is ``max(y, 0)`` and band ``k + n/2`` is
    ``max(-y, 0)``, bit for bit what the full computation gives.
    """
    half = basis.shape[1] // 2
    cos, sin = basis[0, :half].view(1, -1, 1, 1), basis[1, :half].view(1, -1, 1, 1)
    power = _times_power9((ux * cos).addcmul_(uy, sin), magnitude, inplace=True)  # x^9 * |g|, sign kept
    batch, _, height, width = ux.shape
    bands = torch.empty(batch, 2 * half, height, width, dtype=ux.dtype, device=ux.device)
    torch.clamp_min(power, 0, out=bands[:, :half])
    torch.neg(power, out=bands[:, half:]).clamp_min_(0)
    return bands


def cell_filter_at(values: torch.Tensor, dim: int, cell_size: int, start: int, count: int, step: int) -> torch.Tensor:
    """The original's 1-D cell filter along ``dim`` (-1 or -2), evaluated only at ``start + k * step``.

    The C++ builds taps ``f[0] = f[cs+1] = 0.25; f[i+1] = 1 for i in 1..cs`` and then overwrites
    ``f[cs+1]`` with 1, so the kernel is ``[0.25, 0, 1 (cs times), 0 (cs-1 times)]`` centred at index
    ``cs``: in correlation, offset ``-cs`` weighs 0.25 and offsets ``-cs+2 .. 1`` weigh 1, borders
    replicated. We keep that quirk (asymmetric, total weight ``cs + 0.25``): it defines the descriptor.

    Args:
        values: ``(B, N, H, W)`` maps, already padded so that every tap is inside.
        dim: -1 to filter along x, -2 along y.
        cell_size: the cell size ``cs``.
        start: first position (an index into ``values``); taps reach ``start - cs`` to
            ``start + (count - 1) * step + 1``.
        count: number of positions.
        step: stride between positions.

    Returns:
        ``(B, N, H, count)`` for ``dim=-1``, ``(B, N, count, W)`` for ``dim=-2``.
    """
    first = start - cell_size
    stop = first + (count - 1) * step + 1
    if dim == -1:
        out = values[..., first:stop:step] * 0.25
        for tap in range(2, cell_size + 2):
            out.add_(values[..., first + tap : stop + tap : step])  # add_ saves nothing for autograd
    else:
        out = values[:, :, first:stop:step] * 0.25
        for tap in range(2, cell_size + 2):
            out.add_(values[:, :, first + tap : stop + tap : step])
    return out
