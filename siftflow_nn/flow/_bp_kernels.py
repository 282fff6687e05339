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

The sweeps themselves are in ``_bp_sweeps.py``; this module holds the terms of the energy, the
coarser copies of a field, and ``solve``, which drives them. Every term is kept in the band layout
of ``_bands.py`` (``B`` bands, ``S`` steps, ``LANES`` lanes): ``data`` ``(B, S, L * L, LANES)``
int32 indexed ``[b * L + a]`` (vertical label ``b``, horizontal ``a``), ``range_costs``
``(2, B, S, L, LANES)``, ``labels`` ``(2, B, S, LANES)``; ``offsets`` stay ``(2, H, W)`` int32. The
kernels take ``labels``, a tuple of ``L`` zeros, only for its length: numba compiles one version per
tuple length, in which the label loops have a constant trip count.
"""

import math

import numba
import numpy as np

from siftflow_nn.flow import _bp_sweeps, _sad
from siftflow_nn.flow._bands import LANES, band_count, finer, layers_from_bands, layers_to_bands, pixel_of, zeros

HIERARCHY_ITERATIONS = 20  # iterations of every coarser copy of the field, as the original
_HISTOGRAM_BINS = 20000
_DATA_TILE_STEPS = 32  # steps of a band whose costs the data term writes together
_NO_MATCH = -1  # a label whose match falls outside image 2, before the default score is known
_FIRST_HISTOGRAM_MINIMUM = 32767  # the original starts its running minimum there
_i32 = np.int32  # numba widens int32 arithmetic to int64: the casts keep vector code 32 bits wide


def label_token(window: int) -> tuple[int, ...]:
    """The ``labels`` argument of the kernels for a window of radius ``window``."""
    return (0,) * (2 * window + 1)


@numba.njit(cache=True, parallel=True)
def data_term(sift1, sift2, offsets, window):
    """The original's ``ComputeDataTerm`` in bands: L1 distances of uint8 descriptors.

    ``sift1``, ``sift2``: ``(H, W, D)`` uint8, C-contiguous; ``offsets`` ``(2, H, W)``. Returns
    ``(B, S, L * L, LANES)`` int32, zeros in the padding. A match outside image 2 costs the
    original's default score: the median of the in-image costs from a 20000-bin histogram,
    truncated to an integer.
    """
    height, width, channels = sift1.shape
    count = 2 * window + 1
    bands, last_step = band_count(height), width + LANES - 1
    costs = np.zeros((bands, last_step + 2, count * count, LANES), np.int32)
    flat1, flat2 = sift1.reshape(-1), sift2.reshape(-1)
    address1, address2 = flat1.ctypes.data, flat2.ctypes.data
    by_words = channels % _sad.WIDTH == 0  # 32 bytes at a time (128-D descriptors are)
    band_low = np.full(bands, _FIRST_HISTOGRAM_MINIMUM, np.int32)
    band_high = np.zeros(bands, np.int32)
    for band in numba.prange(bands):
        low, high = band_low[band], band_high[band]
        # A tile of steps, one lane after the other: the tile's costs stay in L2 while each lane
        # writes its part of every cache line, and neighbouring pixels' windows overlap, so image
        # 2's rows stay in cache too.
        for first_step in range(1, last_step + 1, _DATA_TILE_STEPS):
            for lane in range(min(LANES, height - band * LANES)):
                y = band * LANES + lane
                for step in range(first_step, min(first_step + _DATA_TILE_STEPS, last_step + 1)):
                    x = step - 1 - lane
                    if x < 0 or x >= width:
                        continue
                    start1 = (y * width + x) * channels
                    for b in range(count):
                        target_y = y + offsets[1, y, x] + b - window
                        for a in range(count):
                            target_x = x + offsets[0, y, x] + a - window
                            if target_x < 0 or target_x >= width or target_y < 0 or target_y >= height:
                                costs[band, step, b * count + a, lane] = _NO_MATCH
                                continue
                            start2 = (target_y * width + target_x) * channels
                            if by_words:
                                total = _i32(0)
                                for word in range(0, channels, _sad.WIDTH):
                                    total += _sad.sum_of_differences_32(
                                        np.uintp(address1 + start1 + word), np.uintp(address2 + start2 + word)
                                    )
                            else:
                                total = _sum_of_differences(flat1, start1, flat2, start2, channels)
                            costs[band, step, b * count + a, lane] = total
                            low, high = min(low, total), max(high, total)
        band_low[band], band_high[band] = low, high
    default = _default_score(costs, height, width, band_low.min(), band_high.max())
    for band in numba.prange(bands):
        block = costs[band].reshape(-1)
        for index in range(block.shape[0]):  # a select, not a branch: vectorised
            block[index] = default if block[index] == _NO_MATCH else block[index]
    return costs


@numba.njit(cache=True, inline="always")
def _sum_of_differences(flat1, start1, flat2, start2, length):
    """``sum |flat1[start1 + c] - flat2[start2 + c]|`` over ``c < length``, uint8 entries. In int32
    and with unsigned indices (no wrap-around test), which LLVM turns into ``psadbw``."""
    total = _i32(0)
    for c in range(length):
        total = _i32(total + abs(_i32(_i32(flat1[np.uintp(start1 + c)]) - _i32(flat2[np.uintp(start2 + c)]))))
    return total


@numba.njit(cache=True)
def _default_score(costs, height, width, low, high):
    """The original's median of the in-image costs (0 when there are none): a 20000-bin histogram
    over ``[0, high]`` with the interval ``(high - low) / 20000``, the first bin holding half."""
    counts = np.zeros(high + 1, np.int64)  # counts[v]: how many in-image costs equal v
    for band in range(costs.shape[0]):
        for step in range(costs.shape[1]):
            for lane in range(LANES):
                if pixel_of(band, step, lane, height, width)[2]:
                    for index in range(costs.shape[2]):
                        value = costs[band, step, index, lane]
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


@numba.njit(cache=True, parallel=True)
def range_costs(offsets, window, gamma):
    """``trunc(gamma * |offset + label - window|)`` in bands: the original's small-displacement term,
    ``(2, B, S, L, LANES)``."""
    _, height, width = offsets.shape
    count = 2 * window + 1
    out = np.zeros((2, band_count(height), width + LANES + 1, count, LANES), np.int32)
    for band in numba.prange(out.shape[1]):
        for layer in range(2):
            for step in range(1, width + LANES):
                for lane in range(LANES):
                    x, y, inside = pixel_of(band, step, lane, height, width)
                    if inside:
                        for label in range(count):
                            distance = abs(float(offsets[layer, y, x] + label - window))
                            out[layer, band, step, label, lane] = np.int32(gamma * distance)
    return out


@numba.njit(cache=True, parallel=True)
def coarser(data, offsets):
    """The original's ``generateCoarserLevel``: 2 x 2 blocks, data summed (in bands), offsets
    averaged by C integer division (toward zero); an odd last row or column makes smaller blocks.

    ``data``: the field's ``(B, S, L * L, LANES)``; ``offsets``: ``(2, H, W)``. Returns the coarse
    field's data and offsets in the same forms."""
    _, height, width = offsets.shape
    coarse_h, coarse_w = (height + 1) // 2, (width + 1) // 2
    cell = data.shape[2]
    coarse_data = np.zeros((band_count(coarse_h), coarse_w + LANES + 1, cell, LANES), np.int32)
    for band in numba.prange(coarse_data.shape[0]):
        for step in range(1, coarse_w + LANES):
            for lane in range(LANES):
                x, y, inside = pixel_of(band, step, lane, coarse_h, coarse_w)
                if not inside:
                    continue
                for fine_y in range(2 * y, min(2 * y + 2, height)):
                    fine_band, fine_lane = fine_y // LANES, fine_y % LANES
                    for fine_x in range(2 * x, min(2 * x + 2, width)):
                        fine_step = fine_x + fine_lane + 1
                        for index in range(cell):
                            coarse_data[band, step, index, lane] += data[fine_band, fine_step, index, fine_lane]
    coarse_offsets = np.empty((2, coarse_h, coarse_w), np.int32)
    for y in numba.prange(coarse_h):
        for x in range(coarse_w):
            for layer in range(2):
                total = count = 0
                for fine_y in range(2 * y, min(2 * y + 2, height)):
                    for fine_x in range(2 * x, min(2 * x + 2, width)):
                        total += offsets[layer, fine_y, fine_x]
                        count += 1
                coarse_offsets[layer, y, x] = abs(total) // count * (1 if total >= 0 else -1)
    return coarse_data, coarse_offsets


@numba.njit(cache=True, parallel=True)
def energy(labels, offsets, data, range_costs, size, s, d):
    """The SIFT Flow energy of a labelling, as the original's ``GetEnergy``; everything in bands
    (``offsets`` too: ``(2, B, S, LANES)``)."""
    height, width = size
    count = range_costs.shape[3]
    bands = labels.shape[1]
    per_band = np.zeros(bands)
    for band in numba.prange(bands):
        total = 0.0
        for step in range(1, width + LANES):
            for lane in range(LANES):
                x, y, inside = pixel_of(band, step, lane, height, width)
                if not inside:
                    continue
                # the lower neighbour: the next lane one step on, or the next band's lane 0
                spills = lane == LANES - 1
                below_band = np.intp(band) + np.intp(spills)
                below_step = step - LANES + 1 if spills else step + 1
                below_lane = 0 if spills else lane + 1
                for layer in range(2):
                    label = labels[layer, band, step, lane]
                    flow = label + offsets[layer, band, step, lane]
                    if x < width - 1:
                        right = labels[layer, band, step + 1, lane] + offsets[layer, band, step + 1, lane]
                        total += min(abs(flow - right) * s, d)
                    if y < height - 1:
                        below = labels[layer, below_band, below_step, below_lane]
                        below += offsets[layer, below_band, below_step, below_lane]
                        total += min(abs(flow - below) * s, d)
                    total += range_costs[layer, band, step, label, lane]
                total += data[band, step, labels[1, band, step, lane] * count + labels[0, band, step, lane], lane]
        per_band[band] = total
    return per_band.sum()  # integers when s and d are: exact in any order


def solve(
    data: np.ndarray,
    offsets: np.ndarray,
    window: int,
    s: float,
    d: float,
    gamma: float,
    iterations: int,
    hierarchy: int,
    energies: str = "every",
) -> tuple[np.ndarray, np.ndarray]:
    """The original's ``ComputeRangeTerm`` and ``MessagePassing`` on one field.

    ``hierarchy`` coarser copies of the field run first, from the coarsest, 20 iterations each,
    each seeding the next finer one's messages; then ``iterations`` on the field itself.

    Args:
        data: the field's data term in bands (``data_term``); ``offsets``: ``(2, H, W)`` int32.
        energies: ``"every"``: the energy after every iteration, as the original reports it;
            ``"last"``: after the last one only; ``"none"``. The labels of the iterations whose
            energy is not wanted are not computed (the sweeps' messages do not depend on them).

    Returns:
        The labels ``(2, H, W)`` int32 (horizontal, vertical) after the last iteration, and the
        energies asked for, ``(iterations,)``, ``(1,)`` or ``(0,)`` float64.
    """
    labels = label_token(window)
    # All values are integers >= 0, so the original's int + double stored in an int adds the floor.
    far = np.array([int(label * s) for label in range(len(labels))], np.int32)  # the no-overlap ramp
    smoothness = (np.int32(math.floor(s)), np.int32(math.floor(d)), far)
    fields = [(data, offsets, gamma)]
    for depth in range(1, hierarchy + 1):
        fields.append((*coarser(*fields[-1][:2]), gamma / 2**depth))
    with _bp_sweeps.vectorised():
        return _solve_fields(fields, window, labels, smoothness, iterations, _exact(s), _exact(d), energies)


def _solve_fields(fields, window, labels, smoothness, iterations, s, d, energies):
    """``solve`` on its fields, finest first: the coarsest copies first, then the field itself."""
    spatial = dual = None
    no_labels = np.zeros((2, 0, 0, 0), np.int32)
    serial = numba.get_num_threads() == 1  # then the sweeps run the bands in turn
    for depth in range(len(fields) - 1, -1, -1):
        field_data, field_offsets, field_gamma = fields[depth]
        size = field_offsets.shape[1:]
        if spatial is None:
            spatial, dual = zeros(size, (4, len(labels))), zeros(size, (len(labels),))
        else:  # the coarser copy's messages, each copied to its 2 x 2 block
            spatial, dual = finer(spatial, size), finer(dual, size)
        terms = (range_costs(field_offsets, window, field_gamma), layers_to_bands(field_offsets), field_data)
        if depth:  # the original also labels and scores the coarser copies; nothing depends on that
            for iteration in range(HIERARCHY_ITERATIONS):
                _bp_sweeps.sweep(spatial, dual, *terms, iteration, size, *smoothness, no_labels, labels, False, serial)
            fields.pop()  # its messages live on in the finer copy; its terms are done with
    band_labels = np.zeros((2, *spatial.shape[1:3], LANES), np.int32)
    recorded = []
    for iteration in range(iterations):
        last = iteration == iterations - 1
        labelled = energies == "every" or last
        out = band_labels if labelled else no_labels
        fresh = energies != "every"  # then labels_out does not hold the previous iteration's labels
        _bp_sweeps.sweep(spatial, dual, *terms, iteration, size, *smoothness, out, labels, fresh, serial)
        if energies == "every" or (last and energies == "last"):
            recorded.append(energy(band_labels, terms[1], terms[2], terms[0], size, s, d))
    return layers_from_bands(band_labels, size), np.array(recorded, np.float64)


def _exact(value: float) -> int | float:
    """An integral parameter as an int, so that the kernels add integers (as exact as the original's)."""
    return int(value) if float(value).is_integer() else float(value)
