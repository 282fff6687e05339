"""The compiled sweeps (16 scan lines at a time) against BP_S written out pixel by pixel in raster
order, as the original's C++ reads: on fields that do not fill their bands, with fractional
smoothness and truncation, and offsets far enough apart that windows do not overlap."""

import math

import numpy as np
import pytest

from siftflow_nn._native import kernels

# Neighbour per (forward, direction): step (dx, dy), the slot left out of the belief, the
# receiver's slot. Slots: the message from the left, right, upper, lower neighbour.
_NEIGHBOURS = {
    (True, 0): ((1, 0), 1, 0),
    (True, 1): ((0, 1), 3, 2),
    (False, 0): ((-1, 0), 0, 1),
    (False, 1): ((0, -1), 2, 3),
}


def _send(belief, shift, from_origin, s, d):
    """The original's message: int + double stored in an int (truncated) at every step."""
    count = len(belief)
    window = count // 2
    threshold = int(min(belief) + d)
    h = list(belief)
    for label in range(1, count):
        h[label] = min(h[label], int(h[label - 1] + s))
    for label in range(count - 2, -1, -1):
        h[label] = min(h[label], int(h[label + 1] + s))
    message = [0] * count
    if abs(shift) > 2 * window:
        sign = -1 if from_origin else 1
        message = [int(sign * label * s) for label in range(count)]
    else:
        first, last = max(0, -shift), min(count, count - shift)
        for label in range(first, last):
            message[label] = h[label + shift]
        for label in range(first - 1, -1, -1):
            message[label] = int(message[label + 1] + s)
        for label in range(last, count):
            message[label] = int(message[label - 1] + s)
    message = [min(value, threshold) for value in message]
    lowest = min(message)
    return [value - lowest for value in message]


def _reference(data, offsets, window, s, d, gamma, iterations):
    """Labels after the last iteration and each iteration's energy, pixel by pixel."""
    count = 2 * window + 1
    _, height, width = offsets.shape
    costs = [[[[int(gamma * abs(offsets[n, y, x] + k - window)) for k in range(count)] for x in range(width)]
              for y in range(height)] for n in range(2)]  # fmt: skip
    spatial = np.zeros((2, height, width, 4, count), np.int64)
    dual = np.zeros((2, height, width, count), np.int64)
    energies = []
    for iteration in range(iterations):
        layer, forward, with_dual = iteration % 2, iteration % 4 < 2, iteration % 8 < 4
        pixels = [(y, x) for y in range(height) for x in range(width)]
        for y, x in pixels if forward else pixels[::-1]:
            total = np.array(costs[layer][y][x]) + dual[layer, y, x] + spatial[layer, y, x].sum(0)
            for direction in range(2):
                (dx, dy), excluded, slot = _NEIGHBOURS[forward, direction]
                if 0 <= x + dx < width and 0 <= y + dy < height:
                    shift = int(offsets[layer, y + dy, x + dx] - offsets[layer, y, x])
                    belief = [int(v) for v in total - spatial[layer, y, x, excluded]]
                    spatial[layer, y + dy, x + dx, slot] = _send(belief, shift, y == x == 0, s, d)
            if with_dual:
                belief = total - dual[layer, y, x]
                cell = data[y, x] if layer == 0 else data[y, x].T  # [other label, this layer's label]
                message = (cell + belief[None, :]).min(1)
                dual[1 - layer, y, x] = message - message.min()
        beliefs = np.array(costs)[..., :] + dual + spatial.sum(3)
        labels = beliefs.argmin(-1).astype(np.int32)  # the first on ties, as the original
        energies.append(_energy(labels, offsets, data, np.array(costs), s, d))
    return labels, np.array(energies)


def _energy(labels, offsets, data, costs, s, d):
    """The original's GetEnergy: data, small displacement, truncated L1 between 4-neighbours."""
    rows, columns = np.indices(labels.shape[1:])
    total = data[rows, columns, labels[1], labels[0]].sum()
    for layer in range(2):
        total += np.take_along_axis(costs[layer], labels[layer][..., None], -1).sum()
        flow = labels[layer] + offsets[layer]
        for axis in (0, 1):
            total += np.minimum(np.abs(np.diff(flow, axis=axis)) * s, d).sum()
    return total


@pytest.mark.parametrize(
    ("height", "width", "window", "s", "d"),
    [(19, 21, 2, 1.5, 7.3), (35, 9, 2, 510, 10200), (7, 30, 2, 3.25, 1e9)],
)
@pytest.mark.parametrize("threads", [1, 2], ids=["bands in turn", "wavefront"])
@pytest.mark.usefixtures("every_build")
def test_sweeps_equal_the_original_raster_order(height, width, window, s, d, threads):
    """One thread runs the bands one after the other, more run the wavefront: both the original's."""
    rng = np.random.default_rng(height * width)
    count = 2 * window + 1
    data = rng.integers(0, 60, (height, width, count, count)).astype(np.int32)
    offsets = rng.integers(-4, 5, (2, height, width)).astype(np.int32)  # some windows do not overlap
    flat = data.reshape(height, width, -1)
    labels, energies = kernels.solve_data(flat, offsets, window, s, d, 0.7, 13, 0, "every", threads)
    expected_labels, expected_energies = _reference(data, offsets, window, s, d, 0.7, 13)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(energies, expected_energies, rtol=1e-13)  # sums of fractions, in another order
    for record, expected in (("last", expected_energies[-1:]), ("none", expected_energies[:0])):
        labels, energies = kernels.solve_data(flat, offsets, window, s, d, 0.7, 13, 0, record, threads)
        np.testing.assert_array_equal(labels, expected_labels)  # the labels are the same without energies
        np.testing.assert_allclose(energies, expected, rtol=1e-13)


@pytest.mark.parametrize(("height", "width"), [(37, 23), (16, 5), (1, 9)])
def test_coarser_sums_each_2x2_block_in_bands(height, width):
    """The original's generateCoarserLevel: data summed over 2 x 2 blocks (smaller at an odd edge),
    offsets averaged by C integer division, toward zero."""
    rng = np.random.default_rng(height)
    data = rng.integers(0, 1000, (height, width, 9)).astype(np.int32)
    offsets = rng.integers(-7, 8, (2, height, width)).astype(np.int32)
    coarse_data, coarse_offsets = kernels.coarser(data, offsets)
    coarse_h, coarse_w = (height + 1) // 2, (width + 1) // 2
    padded = np.zeros((2 * coarse_h, 2 * coarse_w, 9), np.int64)
    padded[:height, :width] = data
    expected = padded.reshape(coarse_h, 2, coarse_w, 2, 9).sum((1, 3))
    np.testing.assert_array_equal(coarse_data, expected)
    for layer in range(2):
        for y in range(coarse_h):
            for x in range(coarse_w):
                block = offsets[layer, 2 * y : 2 * y + 2, 2 * x : 2 * x + 2]
                assert coarse_offsets[layer, y, x] == math.trunc(block.sum() / block.size)
