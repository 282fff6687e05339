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

The sweeps themselves are in ``_bp_sweeps.py`` (16 scan lines at a time); this module holds the
terms of the energy, the coarser and finer copies of a field, and ``solve``, which drives them.

Arrays (C order): ``data`` ``(H, W, L, L)`` int32 indexed ``[y, x, b, a]`` (vertical label ``b``,
horizontal ``a``); ``offsets`` ``(2, H, W)`` int32; ``range_costs`` ``(2, H, W, L)``; messages
``(2, H, W, 4, L)`` (from the left, right, upper and lower neighbour) and ``(2, H, W, L)`` (from the
other layer). The kernels take ``labels``, a tuple of ``L`` zeros, only for its length: numba
compiles one version per tuple length, in which the label loops have a constant trip count.
"""

import math

import numba
import numpy as np

from siftflow_nn.flow import _bp_sweeps

HIERARCHY_ITERATIONS = 20  # iterations of every coarser copy of the field, as the original
_HISTOGRAM_BINS = 20000
_NO_MATCH = -1  # a label whose match falls outside image 2, before the default score is known
_FIRST_HISTOGRAM_MINIMUM = 32767  # the original starts its running minimum there


def label_token(window: int) -> tuple[int, ...]:
    """The ``labels`` argument of the kernels for a window of radius ``window``."""
    return (0,) * (2 * window + 1)


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
    labels = label_token(window)
    # All values are integers >= 0, so the original's int + double stored in an int adds the floor.
    far = np.array([int(label * s) for label in range(len(labels))], np.int32)  # the no-overlap ramp
    smoothness = (np.int32(math.floor(s)), np.int32(math.floor(d)), far)
    fields = [(data, offsets, range_costs_of(offsets, window, gamma))]
    for depth in range(1, hierarchy + 1):
        coarse_data, coarse_offsets = coarser(fields[-1][0], fields[-1][1])
        fields.append((coarse_data, coarse_offsets, range_costs_of(coarse_offsets, window, gamma / 2**depth)))
    with _bp_sweeps.vectorised():
        return _solve_fields(fields, labels, smoothness, iterations, _exact(s), _exact(d))


def _solve_fields(fields, labels, smoothness, iterations, s, d):
    """``solve`` on its fields, finest first: the coarsest copies first, then the field itself."""
    spatial = dual = None
    no_labels = np.zeros((2, 0, 0, 0), np.int32)
    for depth in range(len(fields) - 1, -1, -1):
        level_data, level_offsets, level_range = fields[depth]
        size = level_offsets.shape[1:]
        if spatial is None:
            spatial = _bp_sweeps.zeros(size, (4, len(labels)))
            dual = _bp_sweeps.zeros(size, (len(labels),))
        else:  # the coarser copy's messages, each copied to its 2 x 2 block
            spatial, dual = _bp_sweeps.finer(spatial, size), _bp_sweeps.finer(dual, size)
            fields.pop()  # its messages live on in this copy; its terms are done with
        terms = (
            _bp_sweeps.layers_to_bands(level_range),
            _bp_sweeps.layers_to_bands(level_offsets),
            _bp_sweeps.to_bands(level_data.reshape(*size, -1)),
        )
        # The original also labels and scores the coarser copies after each iteration; nothing
        # depends on that, so here only the field itself is labelled.
        for iteration in range(HIERARCHY_ITERATIONS if depth else 0):
            _bp_sweeps.sweep(spatial, dual, *terms, iteration, size, *smoothness, no_labels, labels)
    data, offsets, field_range = fields[0]
    band_labels = np.zeros((2, *spatial.shape[1:3], _bp_sweeps.LANES), np.int32)
    energies = np.zeros(iterations)
    for iteration in range(iterations):
        _bp_sweeps.sweep(spatial, dual, *terms, iteration, size, *smoothness, band_labels, labels)
        labels_xy = _bp_sweeps.layers_from_bands(band_labels, size)
        energies[iteration] = energy(labels_xy, offsets, data, field_range, s, d)
    return labels_xy, energies


def _exact(value: float) -> int | float:
    """An integral parameter as an int, so that the kernels add integers (as exact as the original's)."""
    return int(value) if float(value).is_integer() else float(value)
