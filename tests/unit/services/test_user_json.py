"""services.user_json: one depth limit for JSON from users, and naming the field of a request
that protobuf refused to decode."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2
from zquant.backtest.v1 import task_pb2
from zquant.engine.v1 import engine_pb2

from services.errors import InvalidArgument
from services.user_json import (
    DEPTH_MESSAGE,
    MAX_JSON_DEPTH,
    parse_json_text,
    struct_depth,
    text_depth,
    undecodable_field,
    value_depth,
)


def test_depth_of_text_ignores_brackets_inside_strings() -> None:
    assert text_depth('{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert text_depth('"\\"[["') == 0
    assert text_depth("[" * 5000 + "]" * 5000) == 5000


def test_parse_json_text_refuses_deep_input_before_parsing() -> None:
    assert parse_json_text('{"type": "object"}', "params_schema") == {"type": "object"}
    with pytest.raises(InvalidArgument) as info:
        parse_json_text("[" * 5000, "params_schema")  # json.loads would raise RecursionError
    assert info.value.violations == [("params_schema", DEPTH_MESSAGE)]
    with pytest.raises(InvalidArgument) as info:
        parse_json_text("{", "params_schema")
    assert info.value.violations[0][0] == "params_schema"
    assert info.value.violations[0][1].startswith("is not valid JSON")


def test_value_and_struct_depth_agree() -> None:
    value: object = 1
    for _ in range(MAX_JSON_DEPTH):
        value = [value]
    assert value_depth({"x": value}) == MAX_JSON_DEPTH + 1
    s = struct_pb2.Struct()
    s.update({"x": value})
    assert struct_depth(s) == MAX_JSON_DEPTH + 1
    assert value_depth({"a": 1}) == struct_depth(struct_pb2.Struct()) == 1


def test_undecodable_request_names_the_deep_field() -> None:
    # params: Struct {fields: {"x": Value{list_value: ListValue{values: [Value{list_value: …}]}}}}
    def varint(n: int) -> bytes:
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def field(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    value = b""  # an empty Value
    for _ in range(120):  # far deeper than protobuf's 100 levels
        value = field(6, field(1, value))  # Value.list_value → ListValue.values
    entry = field(1, b"x") + field(2, value)  # the map entry "x" → value
    params = field(1, entry)  # Struct.fields
    data = field(4, params) + field(2, b"class Strategy: pass")  # RunBacktestRequest.params, strategy_code
    with pytest.raises(Exception):  # noqa: B017 (whatever the runtime raises: it does not decode)
        task_pb2.RunBacktestRequest.FromString(data)
    assert undecodable_field(task_pb2.RunBacktestRequest, data) == ("params", DEPTH_MESSAGE)


def test_undecodable_request_names_the_string_that_is_not_utf8() -> None:
    config = b"\x22\x05" + b"60\xff\xfe0"  # BacktestConfig.symbols = 4, invalid UTF-8
    data = b"\x2a" + bytes([len(config)]) + config  # RunBacktestRequest.config = 5 (task service)
    with pytest.raises(Exception):  # noqa: B017
        task_pb2.RunBacktestRequest.FromString(data)
    assert undecodable_field(task_pb2.RunBacktestRequest, data) == ("config.symbols", "must be valid UTF-8")
    assert undecodable_field(engine_pb2.ListSymbolsRequest, b"\x0a\x02\xff\xfe") == ("symbols", "must be valid UTF-8")
    assert undecodable_field(engine_pb2.ListSymbolsRequest, b"\x0a\x09ab") == ("request",
                                                                              "is not a valid protobuf message")
