"""services/param_numbers.py: whole numbers in strategy params are ints, everywhere."""

from __future__ import annotations

from google.protobuf import struct_pb2

from services.param_numbers import params_from_struct, plain, plain_number


def test_whole_numbers_become_ints_others_are_kept() -> None:
    assert plain_number(9.0) == 9 and type(plain_number(9.0)) is int
    assert plain_number(-3.0) == -3 and type(plain_number(-3.0)) is int
    assert plain_number(0.5) == 0.5 and type(plain_number(0.5)) is float
    assert type(plain_number(2.0**53)) is float  # not exact as a double any more: left alone
    assert type(plain_number(2.0**53 - 1)) is int


def test_plain_converts_inside_lists_and_objects_and_leaves_other_values() -> None:
    value = {"a": 1.0, "b": [2.0, 2.5, {"c": 3.0}], "flag": True, "name": "9.0", "none": None, "n": 4}
    out = plain(value)
    assert out == {"a": 1, "b": [2, 2.5, {"c": 3}], "flag": True, "name": "9.0", "none": None, "n": 4}
    assert type(out["a"]) is int and type(out["b"][0]) is int and type(out["b"][2]["c"]) is int
    assert out["flag"] is True  # a bool is not a number here


def test_a_struct_round_trip_gives_back_the_ints_sent() -> None:
    s = struct_pb2.Struct()
    s.update({"short_window": 9, "long_window": 40, "position_pct": 0.3, "tags": ["x"]})
    assert s.fields["short_window"].number_value == 9.0  # what the wire carries
    params = params_from_struct(s)
    assert params == {"short_window": 9, "long_window": 40, "position_pct": 0.3, "tags": ["x"]}
    assert [type(params[k]) for k in ("short_window", "long_window", "position_pct")] == [int, int, float]
