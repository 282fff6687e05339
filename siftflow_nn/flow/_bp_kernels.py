"""Compiled SIFT Flow belief propagation (numba): the original's own sweeps, on integers.

The model and its conventions are those of ``belief_propagation.py`` (the portable torch solver);
this module runs the schedule of Ce Liu's ``BPFlow::BP_S`` instead of checkerboard updates and
gives the original's messages, labels and energies, iteration by iteration:

- iteration ``n`` updates one layer, ``n % 2`` (0: horizontal labels, 1: vertical), sweeping the
  image in raster order (``n % 4 < 2``: messages sent right and down) or in reverse (left and up);
  the messages to the other layer are sent too when ``n % 8 < 4``;
- messages are int32, as the original's ``T_message``; where the original adds the double
  smoothness ``s`` or truncation ``d`` to one and stores the sum in an int, the sum is truncated;
- a spatial message is the truncated-L1 distance transform of the sender's belief, O(L)
  (Felzenszwalb and Huttenlocher 2006), shifted by the offset difference of the two pixels;
- ``hierarchy`` coarser copies of the field (2 x 2 blocks) run 20 iterations each first and seed
  the messages (the original's ``generateCoarserLevel`` / ``propagateFinerLevel``).

A sweep needs, at each pixel, only the messages its left and upper neighbours (right and lower,
going backwards) sent in the same sweep. So the blocks on one anti-diagonal of a grid of blocks are
independent: they run in parallel, and the result does not depend on the number of threads.

Arrays (C order): ``data`` ``(H, W, L, L)`` int32 indexed ``[y, x, b, a]`` (vertical label ``b``,
horizontal ``a``); ``offsets`` ``(2, H, W)`` int32; ``range_costs`` ``(2, H, W, L)``; ``spatial``
``(2, H, W, 4, L)``, the message into a pixel from its left, right, upper and lower neighbour;
``dual`` ``(2, H, W, L)``, the message into a layer from the other one at the same pixel. The
kernels index them flat, and take ``labels``, a tuple of ``L`` zeros, only for its length: numba
compiles one version per tuple length, in which the label loops have a constant trip count.
"""

import numba
import numpy as np

HIERARCHY_ITERATIONS = 20  # iterations of every coarser copy of the field, as the original
_BLOCK_ROWS, _BLOCK_COLS = 16, 256  # the unit of parallel work in a sweep
_HISTOGRAM_BINS = 20000
_NO_MATCH = -1  # a label whose match falls outside image 2, before the default score is known
_FIRST_HISTOGRAM_MINIMUM = 32767  # the original starts its running minimum there


def label_token(window: int) -> tuple[int, ...]:
    """The ``labels`` argument of the kernels for a window of radius ``window``."""
    return (0,) * (2 * window + 1)


@numba.njit(cache=True)
def _send(belief, message, shift, from_first_pixel, s, d, labels):
    """One spatial message: the distance transform of ``belief`` (changed in place) into
    ``message``. ``shift`` is the receiver's offset minus the sender's."""
    count = len(labels)
    window = count // 2
    lowest = belief[0]
    for label in range(1, count):
        lowest = min(lowest, belief[label])
    threshold = np.int32(lowest + d)  # int + double stored in an int: truncated, as the original
    # min(b, trunc(b' + s)) is the original's "b < b' + s ? b : (int)(b' + s)" for b, s >= 0, and
    # compiles without branches.
    for label in range(1, count):
        belief[label] = min(belief[label], np.int32(belief[label - 1] + s))
    for label in range(count - 2, -1, -1):
        belief[label] = min(belief[label], np.int32(belief[label + 1] + s))
    if abs(shift) > 2 * window:  # the windows do not overlap
        sign = -1 if from_first_pixel else 1  # the original tests the sender's pixel index here
        for label in range(count):
            message[label] = np.int32(sign * label * s)
    else:  # receiver label r is sender label r + shift; beyond the sender's window, + s per step
        first = max(0, -shift)
        last = min(count, count - shift)
        for label in range(first, last):
            message[label] = belief[label + shift]
        for label in range(first - 1, -1, -1):
            message[label] = np.int32(message[label + 1] + s)
        for label in range(last, count):
            message[label] = np.int32(message[label - 1] + s)
    lowest = threshold
    for label in range(count):
        value = min(message[label], threshold)
        message[label] = value
        lowest = min(lowest, value)
    for label in range(count):
        message[label] -= lowest


@numba.njit(cache=True)
def _send_dual(belief, data, layer, message, labels):
    """The message from ``layer`` to the other one at a pixel whose costs are ``data`` (``L * L``,
    ``[b, a]``): per label of the other layer, the least data cost + belief over this layer's."""
    count = len(labels)
    for other in range(count):
        if layer == 0:  # to the vertical label b: min over a of data[b, a] + belief[a]
            row = data[other * count : (other + 1) * count]
            best = row[0] + belief[0]
            for label in range(1, count):
                best = min(best, row[label] + belief[label])
        else:  # to the horizontal label a: min over b of data[b, a] + belief[b]
            best = data[other] + belief[0]
            for label in range(1, count):
                best = min(best, data[label * count + other] + belief[label])
        message[other] = best
    lowest = message[0]
    for other in range(1, count):
        lowest = min(lowest, message[other])
    for other in range(count):
        message[other] -= lowest


@numba.njit(cache=True)
def _argmin(values):
    best = 0
    for label in range(1, len(values)):
        if values[label] < values[best]:  # the first label on ties, as the original
            best = label
    return best


@numba.njit(cache=True)
def _layer(spatial, dual, range_costs, layer):
    """One layer's messages, dual messages and range costs, as flat arrays."""
    size = spatial.shape[1] * spatial.shape[2] * spatial.shape[4]
    messages = spatial.reshape(-1)[layer * 4 * size : (layer + 1) * 4 * size]
    return (
        messages,
        dual.reshape(-1)[layer * size : (layer + 1) * size],
        range_costs.reshape(-1)[layer * size : (layer + 1) * size],
    )


@numba.njit(cache=True)
def _belief(messages, into, costs, pixel, out, labels):
    """A pixel's belief in one layer: range cost + dual message + the 4 spatial messages, into ``out``."""
    count = len(labels)
    slots = messages[pixel * 4 * count : (pixel + 1) * 4 * count]  # left, right, above, below
    own, own_costs = into[pixel * count : (pixel + 1) * count], costs[pixel * count : (pixel + 1) * count]
    for label in range(count):
        out[label] = (
            own[label] + own_costs[label] + slots[label] + slots[count + label] + slots[2 * count + label]
            + slots[3 * count + label]
        )  # fmt: skip


@numba.njit(cache=True)
def _neighbour(forward, direction, x, y, width, height):
    """``BP_S``'s two messages per pixel: ``(receiver offset, slot excluded, receiver's slot)``, or
    a receiver offset of 0 where the pixel has no neighbour that way. Slots: left, right, above, below."""
    if forward and direction == 0 and x < width - 1:
        return 1, 1, 0
    if forward and direction == 1 and y < height - 1:
        return width, 3, 2
    if not forward and direction == 0 and x > 0:
        return -1, 0, 1
    if not forward and direction == 1 and y > 0:
        return -width, 2, 3
    return 0, 0, 0


@numba.njit(cache=True)
def _sweep_block(spatial, dual, range_costs, offsets, data, iteration, rows, cols, s, d, labels_out, labels):
    """Visit one block of pixels in raster order (reverse raster going backwards): ``BP_S``'s loop.

    With ``labels_out`` non-empty, also label both layers of every visited pixel: at the visit, a
    pixel's messages already hold their values at the end of the sweep.
    """
    count = len(labels)
    height, width = offsets.shape[1], offsets.shape[2]
    layer, forward, with_dual = iteration % 2, iteration % 4 < 2, iteration % 8 < 4
    messages, into, costs = _layer(spatial, dual, range_costs, layer)
    other_messages, other_into, other_costs = _layer(spatial, dual, range_costs, 1 - layer)
    offset = offsets.reshape(-1)[layer * height * width : (layer + 1) * height * width]
    flat_data = data.reshape(-1)
    total, belief = np.empty(count, np.int32), np.empty(count, np.int32)
    for row_index in range(rows[1] - rows[0]):
        y = rows[0] + row_index if forward else rows[1] - 1 - row_index
        for col_index in range(cols[1] - cols[0]):
            x = cols[0] + col_index if forward else cols[1] - 1 - col_index
            pixel = y * width + x
            _belief(messages, into, costs, pixel, total, labels)
            for direction in range(2):  # each message leaves out what its receiver sent
                step, excluded, slot = _neighbour(forward, direction, x, y, width, height)
                if step != 0:
                    excluded_message = messages[(pixel * 4 + excluded) * count : (pixel * 4 + excluded + 1) * count]
                    for label in range(count):
                        belief[label] = total[label] - excluded_message[label]
                    start = ((pixel + step) * 4 + slot) * count
                    shift = offset[pixel + step] - offset[pixel]
                    _send(belief, messages[start : start + count], shift, pixel == 0, s, d, labels)
            if with_dual:
                own = into[pixel * count : (pixel + 1) * count]
                for label in range(count):
                    belief[label] = total[label] - own[label]
                cell = flat_data[pixel * count * count : (pixel + 1) * count * count]
                _send_dual(belief, cell, layer, other_into[pixel * count : (pixel + 1) * count], labels)
            if labels_out.shape[1] > 0:
                labels_out[layer, y, x] = _argmin(total)
                if with_dual:  # otherwise the other layer's belief, and label, did not change
                    _belief(other_messages, other_into, other_costs, pixel, belief, labels)
                    labels_out[1 - layer, y, x] = _argmin(belief)


@numba.njit(cache=True, parallel=True)
def sweep(spatial, dual, range_costs, offsets, data, iteration, s, d, labels_out, labels):
    """One iteration of ``BP_S``, as a wavefront over blocks; labels both layers when
    ``labels_out`` ``(2, H, W)`` is non-empty (pass a ``(2, 0, 0)`` array to skip that)."""
    height, width = offsets.shape[1], offsets.shape[2]
    forward = iteration % 4 < 2
    block_rows = (height + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    block_cols = (width + _BLOCK_COLS - 1) // _BLOCK_COLS
    for diagonal in range(block_rows + block_cols - 1):
        first_row = max(0, diagonal - block_cols + 1)
        last_row = min(diagonal, block_rows - 1)
        for index in numba.prange(last_row - first_row + 1):
            block_row = first_row + index
            block_col = diagonal - block_row
            if not forward:  # the wavefront starts at the bottom-right corner
                block_row = block_rows - 1 - block_row
                block_col = block_cols - 1 - block_col
            rows = (block_row * _BLOCK_ROWS, min(height, (block_row + 1) * _BLOCK_ROWS))
            cols = (block_col * _BLOCK_COLS, min(width, (block_col + 1) * _BLOCK_COLS))
            _sweep_block(spatial, dual, range_costs, offsets, data, iteration, rows, cols, s, d, labels_out, labels)


@numba.njit(cache=True, parallel=True)
def energy(labels_xy, offsets, data, range_costs, s, d):
    """The SIFT Flow energy of a labelling ``(2, H, W)``, as the original's ``GetEnergy``."""
    height, width = offsets.shape[1], offsets.shape[2]
    per_row = np.zeros(height)
    for y in numba.prange(height):
        total = 0.0
        for x in range(width):
            for layer in range(2):
                flow = labels_xy[layer, y, x] + offsets[layer, y, x]
                if x < width - 1:
                    total += min(abs(flow - labels_xy[layer, y, x + 1] - offsets[layer, y, x + 1]) * s, d)
                if y < height - 1:
                    total += min(abs(flow - labels_xy[layer, y + 1, x] - offsets[layer, y + 1, x]) * s, d)
                total += range_costs[layer, y, x, labels_xy[layer, y, x]]
            total += data[y, x, labels_xy[1, y, x], labels_xy[0, y, x]]
        per_row[y] = total
    return per_row.sum()  # integers when s and d are: exact in any order


@numba.njit(cache=True)
def range_costs_of(offsets, window, gamma):
    """``trunc(gamma * |offset + label - window|)``: the original's small-displacement term."""
    _, height, width = offsets.shape
    out = np.empty((2, height, width, 2 * window + 1), np.int32)
    for layer in range(2):
        for y in range(height):
            for x in range(width):
                for label in range(2 * window + 1):
                    out[layer, y, x, label] = np.int32(gamma * abs(float(offsets[layer, y, x] + label - window)))
    return out


@numba.njit(cache=True)
def coarser(data, offsets):
    """The original's ``generateCoarserLevel``: 2 x 2 blocks, data summed, offsets averaged by C
    integer division (toward zero); an odd last row or column makes smaller blocks."""
    _, height, width = offsets.shape
    coarse_h, coarse_w = (height + 1) // 2, (width + 1) // 2
    cell = data.shape[2] * data.shape[3]
    fine = data.reshape(height, width, cell)
    coarse_data = np.zeros((coarse_h, coarse_w, cell), np.int32)
    coarse_offsets = np.empty((2, coarse_h, coarse_w), np.int32)
    for y in range(coarse_h):
        for x in range(coarse_w):
            sum_x = sum_y = count = 0
            for fine_y in range(2 * y, min(2 * y + 2, height)):
                for fine_x in range(2 * x, min(2 * x + 2, width)):
                    for index in range(cell):
                        coarse_data[y, x, index] += fine[fine_y, fine_x, index]
                    sum_x += offsets[0, fine_y, fine_x]
                    sum_y += offsets[1, fine_y, fine_x]
                    count += 1
            coarse_offsets[0, y, x] = abs(sum_x) // count * (1 if sum_x >= 0 else -1)
            coarse_offsets[1, y, x] = abs(sum_y) // count * (1 if sum_y >= 0 else -1)
    return coarse_data.reshape((coarse_h, coarse_w) + data.shape[2:]), coarse_offsets


@numba.njit(cache=True)
def finer(messages, height, width):
    """``propagateFinerLevel``: every pixel of the finer grid starts from its 2 x 2 block's messages."""
    layers, coarse_h, coarse_w = messages.shape[:3]
    size = messages[0, 0, 0].size
    coarse = messages.reshape(layers, coarse_h, coarse_w, size)
    out = np.empty((layers, height, width, size), np.int32)
    for layer in range(layers):
        for y in range(height):
            for x in range(width):
                for index in range(size):
                    out[layer, y, x, index] = coarse[layer, y // 2, x // 2, index]
    return out.reshape((layers, height, width) + messages.shape[3:])


@numba.njit(cache=True, parallel=True)
def data_term(sift1, sift2, offsets, window):
    """The original's ``ComputeDataTerm``: L1 distances of uint8 descriptors, int32 ``(H, W, L, L)``.

    ``sift1``, ``sift2``: ``(H, W, D)`` uint8. A match outside image 2 costs the original's default
    score: the median of the in-image costs from a 20000-bin histogram, truncated to an integer.
    """
    height, width, channels = sift1.shape
    count = 2 * window + 1
    costs = np.empty((height, width, count, count), np.int32)
    row_low = np.full(height, _FIRST_HISTOGRAM_MINIMUM, np.int32)
    row_high = np.zeros(height, np.int32)
    for y in numba.prange(height):
        low, high = row_low[y], row_high[y]
        for x in range(width):
            for b in range(count):
                target_y = y + offsets[1, y, x] + b - window
                for a in range(count):
                    target_x = x + offsets[0, y, x] + a - window
                    if target_x < 0 or target_x >= width or target_y < 0 or target_y >= height:
                        costs[y, x, b, a] = _NO_MATCH
                        continue
                    total = np.int32(0)
                    for c in range(channels):
                        total += abs(np.int32(sift1[y, x, c]) - np.int32(sift2[target_y, target_x, c]))
                    costs[y, x, b, a] = total
                    low, high = min(low, total), max(high, total)
        row_low[y], row_high[y] = low, high
    default = _default_score(costs, row_low.min(), row_high.max())
    flat = costs.reshape(-1)
    for index in numba.prange(flat.shape[0]):
        if flat[index] == _NO_MATCH:
            flat[index] = default
    return costs


@numba.njit(cache=True)
def _default_score(costs, low, high):
    """The original's median of the in-image costs (0 when there are none): a 20000-bin histogram
    over ``[0, high]`` with the interval ``(high - low) / 20000``, the first bin holding half."""
    counts = np.zeros(high + 1, np.int64)  # counts[v]: how many in-image costs equal v
    for value in costs.reshape(-1):
        if value != _NO_MATCH:
            counts[value] += 1
    total = counts.sum()
    if total == 0:
        return 0
    interval = (high - low) / _HISTOGRAM_BINS
    histogram = np.zeros(_HISTOGRAM_BINS)
    for value in range(high + 1):
        if counts[value]:  # cost / interval, capped (an interval of 0 puts everything in the last bin)
            position = value / interval if interval > 0 else np.inf
            histogram[int(min(position, _HISTOGRAM_BINS - 1))] += counts[value]
    probability = 0.0
    for index in range(_HISTOGRAM_BINS):
        probability += histogram[index] / total
        if probability >= 0.5:
            return np.int32(max(index, 1) * interval + low)
    return 0


def solve(
    data: np.ndarray,
    offsets: np.ndarray,
    window: int,
    s: float,
    d: float,
    gamma: float,
    iterations: int,
    hierarchy: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The original's ``ComputeRangeTerm`` and ``MessagePassing`` on one field.

    ``hierarchy`` coarser copies of the field run first, from the coarsest, 20 iterations each,
    each seeding the next finer one's messages; then ``iterations`` on the field itself.

    Returns:
        The labels ``(2, H, W)`` int32 (horizontal, vertical) after the last iteration, and the
        energy after every iteration, ``(iterations,)`` float64.
    """
    s, d = _exact(s), _exact(d)
    labels = label_token(window)
    fields = [(data, offsets, range_costs_of(offsets, window, gamma))]
    for depth in range(1, hierarchy + 1):
        coarse_data, coarse_offsets = coarser(fields[-1][0], fields[-1][1])
        fields.append((coarse_data, coarse_offsets, range_costs_of(coarse_offsets, window, gamma / 2**depth)))
    spatial = dual = None
    no_labels = np.zeros((2, 0, 0), np.int32)
    for depth in range(hierarchy, -1, -1):
        level_data, level_offsets, level_range = fields[depth]
        _, height, width = level_offsets.shape
        if spatial is None:
            spatial = np.zeros((2, height, width, 4, len(labels)), np.int32)
            dual = np.zeros((2, height, width, len(labels)), np.int32)
        else:
            spatial, dual = finer(spatial, height, width), finer(dual, height, width)
        # The original also labels and scores the coarser copies after each iteration; nothing
        # depends on that, so here only the field itself is labelled.
        for iteration in range(HIERARCHY_ITERATIONS if depth else 0):
            sweep(spatial, dual, level_range, level_offsets, level_data, iteration, s, d, no_labels, labels)
        if depth:
            fields.pop()  # its messages live on in the finer copy; its terms are done with
    field_range = fields[0][2]
    labels_xy = np.zeros((2,) + offsets.shape[1:], np.int32)
    energies = np.zeros(iterations)
    for iteration in range(iterations):
        sweep(spatial, dual, field_range, offsets, data, iteration, s, d, labels_xy, labels)
        energies[iteration] = energy(labels_xy, offsets, data, field_range, s, d)
    return labels_xy, energies


def _exact(value: float) -> int | float:
    """An integral parameter as an int, so that the kernels add integers (as exact as the original's)."""
    return int(value) if float(value).is_integer() else float(value)
