"""The 32-byte sum of absolute differences of the data term."""

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from siftflow_nn.flow import _sad  # noqa: E402


@numba.njit(cache=False)
def _distances(first, second):
    out = np.zeros(first.shape[0], np.int32)
    for row in range(first.shape[0]):
        out[row] = _sad.sum_of_differences_32(first[row].ctypes.data, second[row].ctypes.data)
    return out


def test_sum_of_differences_32_is_the_l1_distance():
    rng = np.random.default_rng(7)
    buffer = rng.integers(0, 256, (2, 9 * 32 + 1), dtype=np.uint8)
    first = buffer[0, 1:].reshape(9, 32)  # rows that start at odd addresses: unaligned loads
    second = buffer[1, :-1].reshape(9, 32)
    first[0], second[0] = 255, 0  # the largest sum, 32 * 255
    first[1], second[1] = 0, 255  # the same, the other way round (no wrap-around)
    second[2] = first[2]  # zero
    expected = np.abs(first.astype(np.int32) - second.astype(np.int32)).sum(1)
    assert expected[0] == expected[1] == 32 * 255 and expected[2] == 0
    np.testing.assert_array_equal(_distances(first, second), expected)
