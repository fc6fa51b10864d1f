"""wsl.utils.numbers.finite_float: the one parser of numbers read from files."""

import math

import pytest

from wsl.utils.numbers import finite_float


@pytest.mark.parametrize("value, expected", [(3, 3.0), (2.5, 2.5), ("12.5", 12.5), ("1e-3", 1e-3), (-0.0, 0.0)])
def test_accepts_numbers_and_numeric_strings(value, expected):
    result = finite_float(value, "x")
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value, message", [
    (True, "gt.json: video v1: expected a number, got True"),
    ("abc", "gt.json: video v1: expected a number, got 'abc'"),
    (None, "gt.json: video v1: expected a number, got None"),
    ([1], "gt.json: video v1: expected a number, got [1]"),
    (math.nan, "gt.json: video v1: expected a finite number, got nan"),
    ("inf", "gt.json: video v1: expected a finite number, got 'inf'"),
])
def test_rejects_with_where(value, message):
    with pytest.raises(ValueError) as error:
        finite_float(value, "gt.json: video v1")
    assert str(error.value) == message
