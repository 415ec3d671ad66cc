"""Two's-complement helpers of the golden models against plain Python integer arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from ftaccel.errors import ConfigError, check_int, is_int
from ftaccel.golden.bits import flip_bit, signed_array, to_unsigned, wrap


def _py_wrap(x: int, width: int) -> int:
    """What a register of ``width`` bits reads back: the low bits, as a signed number."""
    low = x % (2 ** width)
    return low - 2 ** width if low >= 2 ** (width - 1) else low


@pytest.mark.parametrize("width", [1, 2, 7, 8, 13, 32, 62])
def test_wrap_and_unsigned_match_python(width):
    seed = 1300 + width
    print("seed", seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2 ** 62), 2 ** 62, 200)
    got = wrap(x, width)
    want = [_py_wrap(int(v), width) for v in x]
    assert got.tolist() == want
    assert to_unsigned(x, width).tolist() == [int(v) % (2 ** width) for v in x]
    assert np.array_equal(wrap(to_unsigned(x, width), width), got)  # sign extension


def test_wrap_elementwise_widths():
    x = np.array([255, 255, 255, -129])
    w = np.array([8, 9, 4, 8])
    assert wrap(x, w).tolist() == [_py_wrap(int(a), int(b)) for a, b in zip(x, w, strict=True)]


@pytest.mark.parametrize("width", [2, 8, 16])
def test_flip_bit_matches_python(width):
    seed = 1400 + width
    print("seed", seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(-(2 ** (width - 1)), 2 ** (width - 1), 100)
    bit = rng.integers(0, width, 100)
    got = flip_bit(x, bit, width)
    want = [_py_wrap((int(v) % 2 ** width) ^ (1 << int(b)), width) for v, b in zip(x, bit,
                                                                                      strict=True)]
    assert got.tolist() == want
    assert np.array_equal(flip_bit(got, bit, width), x)  # a flip is its own inverse


def test_bad_widths_and_bits():
    for bad in (0, 63, 2.0, True, "8"):
        with pytest.raises(ValueError):
            wrap(1, bad)
    with pytest.raises(ValueError):
        flip_bit(1, 8, 8)
    with pytest.raises(ValueError):
        signed_array([128], "x", 8)
    with pytest.raises(ValueError):
        signed_array([0.5], "x")
    assert signed_array(np.array([-128, 127], np.int8), "x", 8).dtype == np.int64


def test_is_int_and_check_int():
    assert is_int(3) and not is_int(True) and not is_int(3.0) and not is_int(np.int64(3))
    assert is_int(np.int64(3), numpy=True) and not is_int(np.bool_(True), numpy=True)
    assert check_int("rows", 4, 1, 8) == 4
    with pytest.raises(ConfigError, match="rows"):
        check_int("rows", 9, 1, 8)
