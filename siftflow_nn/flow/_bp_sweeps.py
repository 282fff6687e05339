"""SIFT Flow's belief-propagation sweeps (numba), ``LANES`` scan lines at a time.

Ce Liu's ``BPFlow::BP_S`` visits the pixels in raster order (reverse raster going backwards); a
pixel's messages need only those its left and upper neighbours (right and lower) sent in the same
sweep, so the pixels of one anti-diagonal of a band of ``LANES`` rows are independent, and the
sweeps visit them together, one SIMD lane per row, in the layout of ``_bands.py``. Any order that
keeps those two dependencies gives the original's messages exactly. The padding computes on zeros,
and what it sends is 0 (a message into a pixel from outside the image stays 0, as in the original).

Arrays: ``spatial`` ``(2, bands, steps, 4, L, LANES)`` int32, the message into a pixel from its
left, right, upper and lower neighbour; ``dual`` ``(2, bands, steps, L, LANES)``, the message into a
layer from the other one; ``range_costs`` like ``dual``; ``offsets`` ``(2, bands, steps, LANES)``;
``data`` ``(bands, steps, L * L, LANES)`` indexed ``[b * L + a]`` (vertical label ``b``,
horizontal ``a``). Layer 0 holds the horizontal labels, layer 1 the vertical ones.

The arithmetic is the original's: its values here are all integers >= 0 (alpha, d and gamma are
checked non-negative), so where it adds the double ``s`` or ``d`` to an int and stores an int,
that is adding ``floor(s)`` or ``floor(d)`` (the callers pass those).
"""

import contextlib

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from siftflow_nn.flow._bands import LANES

_BLOCK_STEPS = 32  # steps per unit of parallel work; at least LANES - 1 (see sweep)
_LEFT, _RIGHT, _ABOVE, _BELOW = 0, 1, 2, 3  # message slots: where the message comes from


@contextlib.contextmanager
def vectorised():
    """Compile what runs inside with LLVM's SLP vectoriser, which numba leaves off by default
    (``NUMBA_SLP_VECTORIZE``; numba reads its config module at each compilation). It turns the
    sweeps' unrolled lane loops into 16-wide vector code: about 4x faster sweeps. The loop
    vectoriser cannot: it runs after constant 16-trip loops have been unrolled. Call the sweeps
    only inside (``_bp_kernels.solve`` does): numba caches what it compiled, slow or not."""
    saved = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        numba.config.SLP_VECTORIZE = saved


@numba.njit(cache=True, parallel=True)
def sweep(
    spatial, dual, range_costs, offsets, data, iteration, size, s, d, far, labels_out, labels, fresh=False, serial=False
):
    """One iteration of ``BP_S`` on a field of ``size = (H, W)`` pixels in bands.

    Iteration ``n`` updates layer ``n % 2``, forwards (messages sent right and down) when
    ``n % 4 < 2``, and sends the dual messages too when ``n % 8 < 4``. ``s``, ``d``: the integer
    parts of the smoothness weight and truncation; ``far[r] = floor(r * s)``, the original's message
    where the two pixels' windows do not overlap. With ``labels_out`` ``(2, bands, steps, LANES)``
    (pass ``(2, 0, 0, 0)`` to skip), every pixel is labelled as it is visited (its messages then
    hold their values at the end of the sweep): in the layer updated, and in the other one when the
    dual messages changed its beliefs or when ``fresh`` says ``labels_out`` does not hold the
    previous iteration's labels. ``serial``: the caller runs numba on one thread (see below).

    Blocks of ``_BLOCK_STEPS`` steps run in parallel on diagonals ``2 * band + block``: a block
    needs the one before it in its band, and the upper band's up to ``LANES - 1`` steps ahead. With
    ``serial`` the bands run one after the other instead (no parallel launch per diagonal: 10-15%
    faster on one thread; the caller says so, as numba cannot cache a kernel that asks numba). The
    result does not depend on the number of threads.
    """
    bands, steps = spatial.shape[1], spatial.shape[2] - 2
    blocks = (steps + _BLOCK_STEPS - 1) // _BLOCK_STEPS
    forward = iteration % 4 < 2
    terms = (spatial, dual, range_costs, offsets, data)
    if serial:
        for index in range(bands):
            band = index if forward else bands - 1 - index
            _sweep_block(*terms, iteration, band, 1, steps + 1, size, s, d, far, labels_out, labels, fresh)
        return
    for diagonal in range(2 * (bands - 1) + blocks):
        first_band = max(0, (diagonal - blocks + 2) // 2)
        last_band = min(bands - 1, diagonal // 2)
        for index in numba.prange(last_band - first_band + 1):
            band = first_band + index
            block = diagonal - 2 * band
            if not forward:  # the wavefront starts at the bottom-right corner
                band, block = bands - 1 - band, blocks - 1 - block
            first = 1 + block * _BLOCK_STEPS
            last = min(first + _BLOCK_STEPS, steps + 1)
            _sweep_block(*terms, iteration, band, first, last, size, s, d, far, labels_out, labels, fresh)


@numba.njit(cache=True)
def _sweep_block(
    spatial, dual, range_costs, offsets, data, iteration, band, first, last, size, s, d, far, labels_out, labels, fresh
):
    """Steps ``first`` to ``last - 1`` of one band (backwards: from ``last - 1`` down).

    The big arrays are indexed whole (a view per step would cost numba two reference-count
    calls); the per-step vectors live on the stack, where LLVM keeps them in registers.
    """
    count = len(labels)
    height, width = size
    bands, final_step = spatial.shape[1], spatial.shape[2] - 1
    layer, forward, with_dual = iteration % 2, iteration % 4 < 2, iteration % 8 < 4
    other = 1 - layer
    total = numba.carray(_stack_vectors(labels), (count, LANES))
    belief = numba.carray(_stack_vectors(labels), (count, LANES))
    message = numba.carray(_stack_vectors(labels), (count, LANES))
    lane = numba.carray(_stack_lanes(4), (4, LANES))  # per-lane scratch: receiver offset, sends, two more
    for index in range(last - first):
        step = first + index if forward else last - 1 - index
        _belief(spatial, dual, range_costs, layer, band, step, total, labels)
        # along the row: to the same lane at the next (previous) step
        target = step + 1 if forward else step - 1
        for k in range(LANES):
            x, y = step - 1 - k, band * LANES + k
            receiver_x = x + 1 if forward else x - 1
            lane[1, k] = (x >= 0) & (x < width) & (y < height) & (receiver_x >= 0) & (receiver_x < width)
            lane[0, k] = offsets[layer, band, target, k]
        excluded, slot = (_RIGHT, _LEFT) if forward else (_LEFT, _RIGHT)
        origin = band == 0 and step == 1  # the original's sign quirk tests for the sender at pixel 0
        _message(total, spatial, layer, band, step, excluded, offsets, lane, origin, s, d, far, belief, message, labels)
        for label in range(count):
            for k in range(LANES):
                spatial[layer, band, target, slot, label, k] = message[label, k]
        # down the column: to the next (previous) lane at the next (previous) step
        for k in range(LANES):
            x, y = step - 1 - k, band * LANES + k
            receiver_y = y + 1 if forward else y - 1
            lane[1, k] = (x >= 0) & (x < width) & (y < height) & (receiver_y >= 0) & (receiver_y < height)
        if forward:
            for k in range(LANES - 1):
                lane[0, k] = offsets[layer, band, step + 1, k + 1]
            spills = band + 1 < bands and step >= LANES - 1  # the last lane sends to the next band
            lane[0, LANES - 1] = offsets[layer, band + 1, step - LANES + 1, 0] if spills else 0
        else:
            for k in range(1, LANES):
                lane[0, k] = offsets[layer, band, step - 1, k - 1]
            spills = band > 0 and step + LANES - 1 <= final_step  # lane 0 sends to the band above
            lane[0, 0] = offsets[layer, band - 1, step + LANES - 1, LANES - 1] if spills else 0
        excluded, slot = (_BELOW, _ABOVE) if forward else (_ABOVE, _BELOW)
        _message(total, spatial, layer, band, step, excluded, offsets, lane, origin, s, d, far, belief, message, labels)
        for label in range(count):
            if forward:
                for k in range(LANES - 1):
                    spatial[layer, band, step + 1, slot, label, k + 1] = message[label, k]
                if spills:
                    spatial[layer, band + 1, step - LANES + 1, slot, label, 0] = message[label, LANES - 1]
            else:
                for k in range(1, LANES):
                    spatial[layer, band, step - 1, slot, label, k - 1] = message[label, k]
                if spills:
                    spatial[layer, band - 1, step + LANES - 1, slot, label, LANES - 1] = message[label, 0]
        if with_dual:
            _dual_message(total, dual, data, layer, band, step, belief, message, lane, labels)
        if labels_out.shape[1] > 0:
            _argmin(total, labels_out, layer, band, step, lane, labels)
            if with_dual or fresh:  # otherwise the other layer's belief, and label, did not change
                _belief(spatial, dual, range_costs, other, band, step, belief, labels)
                _argmin(belief, labels_out, other, band, step, lane, labels)


# The helpers below keep every lane value int32 (numba widens int32 arithmetic to int64; the
# explicit int32 lets LLVM vectorise 16 lanes per instruction instead of 8).
_i32 = np.int32


@numba.njit(cache=True, inline="always")
def _belief(spatial, dual, range_costs, layer, band, step, out, labels):
    """A step's beliefs in one layer: range cost + dual message + the 4 spatial messages."""
    for label in range(len(labels)):
        for k in range(LANES):
            out[label, k] = _i32(
                range_costs[layer, band, step, label, k] + dual[layer, band, step, label, k]
                + spatial[layer, band, step, 0, label, k] + spatial[layer, band, step, 1, label, k]
                + spatial[layer, band, step, 2, label, k] + spatial[layer, band, step, 3, label, k]
            )  # fmt: skip


@numba.njit(cache=True, inline="always")
def _message(total, spatial, layer, band, step, excluded, offsets, lane, origin, s, d, far, h, out, labels):
    """The messages of one step's lanes to their neighbours one way, into ``out``: the
    truncated-L1 distance transform of the sender's belief without what the receiver sent (slot
    ``excluded``; O(L), Felzenszwalb and Huttenlocher 2006), read at the receiver's labels (the
    windows are shifted by the offset difference), capped at min + d, normalised; 0 where
    ``lane[1]`` says a lane has no neighbour that way. ``lane[0]``: the receivers' offsets."""
    count = len(labels)
    last = _i32(count - 1)
    for label in range(count):
        for k in range(LANES):
            h[label, k] = _i32(total[label, k] - spatial[layer, band, step, excluded, label, k])
    for k in range(LANES):  # lane 2: the cap, min + d; lane 3: the shift of the receiver's window
        lane[2, k] = h[0, k]
        lane[3, k] = _i32(lane[0, k] - offsets[layer, band, step, k])
    for label in range(1, count):
        for k in range(LANES):
            lane[2, k] = min(lane[2, k], h[label, k])
    for k in range(LANES):
        lane[2, k] = _i32(lane[2, k] + d)
    for label in range(1, count):
        for k in range(LANES):
            h[label, k] = min(h[label, k], _i32(h[label - 1, k] + s))
    for label in range(count - 2, -1, -1):
        for k in range(LANES):
            h[label, k] = min(h[label, k], _i32(h[label + 1, k] + s))
    # Receiver label r reads the sender's label r + shift, and beyond the sender's window its edge
    # value + s per label. The shift differs from lane to lane, but each lane's is one of a few
    # values: one pass per shift that some lane has, with constant indices inside (no gather).
    for label in range(count):
        for k in range(LANES):
            out[label, k] = h[label, k]
    # Only the shifts between the lanes' least and greatest, within the window: neighbours' offsets
    # differ by little, so at L = 21 a handful of shifts are tested instead of 41 (3-6% faster).
    least, greatest = _i32(last), _i32(-last)
    for k in range(LANES):
        least, greatest = min(least, lane[3, k]), max(greatest, lane[3, k])
    for shift in range(max(least, -last), min(greatest, last) + 1):
        if shift == 0 or not _any_lane_equal(lane, 3, shift):
            continue
        for label in range(count):
            source = min(max(label + shift, 0), last)
            beyond = _i32(abs(label + shift - source) * s)
            for k in range(LANES):
                out[label, k] = _i32(h[source, k] + beyond) if lane[3, k] == shift else out[label, k]
    for label in range(count):  # where the windows do not overlap, the original's ramp
        ramp = far[label]
        for k in range(LANES):
            out[label, k] = min(out[label, k] if abs(lane[3, k]) <= last else ramp, lane[2, k])
    if origin and abs(lane[3, 0]) > last:  # the ramp is negative when the original sends from pixel 0
        for label in range(count):
            out[label, 0] = min(-far[label], lane[2, 0])
    for label in range(count):  # the cap is one of the candidates: lane 2 becomes the least one
        for k in range(LANES):
            lane[2, k] = min(lane[2, k], out[label, k])
    for label in range(count):
        for k in range(LANES):
            out[label, k] = _i32(_i32(out[label, k] - lane[2, k]) * lane[1, k])


@numba.njit(cache=True, inline="always")
def _any_lane_equal(lane, row, value):
    """Whether some lane of ``lane[row]`` holds ``value``."""
    found = _i32(0)
    for k in range(LANES):
        found |= _i32(lane[row, k] == value)
    return found != 0


@numba.njit(cache=True, inline="always")
def _dual_message(total, dual, data, layer, band, step, belief, out, lane, labels):
    """The message from ``layer`` to the other one at each lane's pixel: per label of the other
    layer, the least data cost + belief (without what the other layer sent) over this layer's."""
    count = len(labels)
    for label in range(count):
        for k in range(LANES):
            belief[label, k] = _i32(total[label, k] - dual[layer, band, step, label, k])
    # One loop nest per layer, so that every index is a constant once the label loops are unrolled.
    if layer == 0:  # to the vertical label b: min over a of data[b, a] + belief[a]
        for target in range(count):
            for k in range(LANES):
                out[target, k] = _i32(data[band, step, target * count, k] + belief[0, k])
            for source in range(1, count):
                for k in range(LANES):
                    cost = data[band, step, target * count + source, k]
                    out[target, k] = min(out[target, k], _i32(cost + belief[source, k]))
    else:  # to the horizontal label a: min over b of data[b, a] + belief[b]
        for target in range(count):
            for k in range(LANES):
                out[target, k] = _i32(data[band, step, target, k] + belief[0, k])
        for source in range(1, count):
            for target in range(count):
                for k in range(LANES):
                    cost = data[band, step, source * count + target, k]
                    out[target, k] = min(out[target, k], _i32(cost + belief[source, k]))
    lowest = lane[2]
    _least(out, lowest, count)
    for target in range(count):
        for k in range(LANES):
            dual[1 - layer, band, step, target, k] = _i32(out[target, k] - lowest[k])


@numba.njit(cache=True, inline="always")
def _argmin(values, labels_out, layer, band, step, lane, labels):
    """Per lane, the label of the least value (the first on ties, as the original)."""
    count = len(labels)
    best, which = lane[2], lane[3]
    _least(values, best, count)
    for k in range(LANES):
        which[k] = _i32(count - 1)
    for label in range(count - 2, -1, -1):  # down to the first label that reaches the least value
        for k in range(LANES):
            which[k] = _i32(label) if values[label, k] == best[k] else which[k]
    for k in range(LANES):
        labels_out[layer, band, step, k] = which[k]


@numba.njit(cache=True, inline="always")
def _least(values, out, count):
    """Per lane, the least of the first ``count`` label vectors of ``values``, into ``out``."""
    for k in range(LANES):
        out[k] = values[0, k]
    for label in range(1, count):
        for k in range(LANES):
            out[k] = min(out[k], values[label, k])


@intrinsic(prefer_literal=True)
def _stack_vectors(typingctx, labels):
    """A ``len(labels) x LANES`` int32 buffer on the stack (its size known when numba compiles)."""
    size = labels.count * LANES

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, llvm_ir.IntType(32), size=size)

    return types.CPointer(types.int32)(labels), codegen


@intrinsic(prefer_literal=True)
def _stack_lanes(typingctx, rows):
    """A ``rows x LANES`` int32 buffer on the stack (``rows``: a literal int)."""
    if not isinstance(rows, types.IntegerLiteral):
        return None
    size = rows.literal_value * LANES

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, llvm_ir.IntType(32), size=size)

    return types.CPointer(types.int32)(rows), codegen
