"""alignlib.seeding: random streams keyed by what they are for."""
import numpy as np
import pytest

from alignlib.seeding import stream


def test_streams_depend_on_keys_not_order():
    a = stream(0, "t", "noise", 1.0, 10, 3).standard_normal(4)
    b = stream(0, "t", "noise", 1.0, 10, 3).standard_normal(4)
    c = stream(0, "t", "noise", 1.0, 10, 4).standard_normal(4)
    d = stream(0, "t", "noise", 1.0000001, 10, 3).standard_normal(4)
    e = stream(0, "u", "noise", 1.0, 10, 3).standard_normal(4)
    np.testing.assert_array_equal(a, b)
    for other in (c, d, e):
        assert not np.allclose(a, other)


def test_keys_of_different_types_are_different_streams_and_bad_keys_are_refused():
    as_int = stream(0, "t", "noise", 10).standard_normal(4)
    as_float = stream(0, "t", "noise", 10.0).standard_normal(4)
    as_str = stream(0, "t", "noise", "10").standard_normal(4)
    assert not np.allclose(as_int, as_float) and not np.allclose(as_int, as_str)
    np.testing.assert_array_equal(stream(0, "t", "noise", np.int64(10)).standard_normal(4), as_int)
    with pytest.raises(TypeError, match="booleans"):
        stream(0, "t", "noise", True)
    with pytest.raises(ValueError, match="negative integer key -1"):
        stream(0, "t", "noise", -1)
    with pytest.raises(TypeError, match="unsupported random-stream key"):
        stream(0, "t", "noise", None)
