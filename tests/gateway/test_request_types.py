"""protos/request_types.py (`make proto`): the JSON types of the REST request bodies that the
gateway's request check (deploy/request_check.lua) reads. Through Envoy:
tests/e2e/test_gateway_request_check.py."""

from __future__ import annotations

import json

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2, timestamp_pb2, wrappers_pb2

from protos import request_types
from services.json_limits import DEPTH_MESSAGE, MAX_JSON_DEPTH


@pytest.fixture(scope="module")
def schema() -> request_types.Schema:
    return request_types.build()


def test_the_generated_file_is_current(envoy_descriptor, schema):
    committed = envoy_descriptor.with_name("request_types.lua").read_text()
    assert committed == request_types.render(schema, MAX_JSON_DEPTH, DEPTH_MESSAGE), "run `make proto`"
    # The services' rule and words, not a copy of them.
    assert f"max_json_depth = {MAX_JSON_DEPTH}," in committed
    assert f'json_depth_message = "{DEPTH_MESSAGE}",' in committed


def test_every_operation_with_a_body_has_a_route_and_no_other(envoy_descriptor, schema):
    document = json.loads(envoy_descriptor.with_name("openapi.json").read_text())
    with_body = {(verb.upper(), path) for path, ops in document["paths"].items()
                 for verb, op in ops.items() if "requestBody" in op}
    assert {(verb, path) for verb, path, _ in schema.routes} == with_body
    assert ("POST", "/api/v1/users", "zquant.auth.v1.CreateUserRequest") in schema.routes
    assert ("POST", "/api/v1/backtest/sweeps/{sweep_id}/trials/{trial_number}:promote",
            "zquant.backtest.v1.PromoteTrialRequest") in schema.routes


def test_fields_get_their_proto3_json_kinds(schema):
    user = schema.messages["zquant.auth.v1.CreateUserRequest"]
    assert user["is_admin"] == {"name": "is_admin", "kind": "bool"}
    assert user["role_id"] == {"name": "role_id", "kind": "int32"}  # optional: presence changes nothing in JSON
    config = schema.messages["zquant.engine.v1.BacktestConfig"]
    assert config["initial_capital"] == {"name": "initial_capital", "kind": "double"}
    assert config["symbols"] == {"name": "symbols", "kind": "string", "repeated": True}
    sweep = schema.messages["zquant.backtest.v1.CreateSweepRequest"]
    assert sweep["config"] == {"name": "config", "kind": "message", "message": "zquant.engine.v1.BacktestConfig"}
    assert sweep["seed"] == {"name": "seed", "kind": "int64"}
    assert sweep["params"] == {"name": "params", "kind": "struct"}
    assert sweep["space"] == {"name": "space", "kind": "message", "map_key": "string",
                              "message": "zquant.backtest.v1.ParamSpace"}
    assert sweep["method"] == {"name": "method", "kind": "enum", "enum": "zquant.backtest.v1.SweepMethod"}
    assert schema.messages["zquant.backtest.v1.ParamSpace"]["values"] == {"name": "values", "kind": "value",
                                                                          "repeated": True}
    assert schema.enums["zquant.backtest.v1.SweepMethod"] == ["grid", "random", "sweep_method_unspecified", "tpe"]
    assert schema.messages["zquant.backtest.v1.CreateStrategyRequest"]["params_schema"]["kind"] == "string"


def _pool_with(fields: list[descriptor_pb2.FieldDescriptorProto],
               nested: list[descriptor_pb2.DescriptorProto] = ()) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, wrappers_pb2, struct_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    message = descriptor_pb2.DescriptorProto(name="M", field=fields, nested_type=nested)
    pool.Add(descriptor_pb2.FileDescriptorProto(
        name="t.proto", package="t", syntax="proto3", message_type=[message],
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto",
                    "google/protobuf/struct.proto"]))
    return pool


def test_well_known_types_scalars_and_maps_of_any_key(schema):
    F = descriptor_pb2.FieldDescriptorProto
    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    entry = descriptor_pb2.DescriptorProto(
        name="CountsEntry", options=descriptor_pb2.MessageOptions(map_entry=True),
        field=[F(name="key", number=1, type=F.TYPE_INT64, label=opt),
               F(name="value", number=2, type=F.TYPE_MESSAGE, type_name=".google.protobuf.UInt64Value", label=opt)])
    fields = [
        F(name="at", number=1, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp", label=opt),
        F(name="flag", number=2, type=F.TYPE_MESSAGE, type_name=".google.protobuf.BoolValue", label=opt),
        F(name="blob", number=3, type=F.TYPE_BYTES, label=opt),
        F(name="big", number=4, type=F.TYPE_FIXED64, label=opt),
        F(name="ratio", number=5, type=F.TYPE_FLOAT, label=rep),
        F(name="anything", number=6, type=F.TYPE_MESSAGE, type_name=".google.protobuf.ListValue", label=opt),
        F(name="counts", number=7, type=F.TYPE_MESSAGE, type_name=".t.M.CountsEntry", label=rep),
        F(name="self", number=8, type=F.TYPE_MESSAGE, type_name=".t.M", label=opt),
    ]
    message = _pool_with(fields, [entry]).FindMessageTypeByName("t.M")
    built = request_types.Schema()
    built.add_message(message)
    assert built.messages["t.M"] == {
        "at": {"name": "at", "kind": "string"},
        "flag": {"name": "flag", "kind": "bool"},
        "blob": {"name": "blob", "kind": "bytes"},
        "big": {"name": "big", "kind": "uint64"},
        "ratio": {"name": "ratio", "kind": "double", "repeated": True},
        "anything": {"name": "anything", "kind": "list"},
        "counts": {"name": "counts", "kind": "uint64", "map_key": "int64"},
        "self": {"name": "self", "kind": "message", "message": "t.M"},  # recursion ends at the name
    }
    assert list(built.messages) == ["t.M"]  # well-known types and map entries are no messages of their own


@pytest.mark.parametrize("template", ["/api/v1/users/{user_id}", "/api/v1/backtest/sweeps:estimate",
                                      "/api/v1/x/{a}/y/{b=*}:go"])
def test_templates_the_check_can_match_are_accepted(template):
    request_types.check_template(template)


@pytest.mark.parametrize("template", ["/api/v1/{name=projects/*}", "/api/v1/files/{path=**}", "/api/v1/*/x",
                                      "api/v1/users", "/api/v1/x:do it"])
def test_templates_the_check_cannot_match_fail_generation(template):
    with pytest.raises(ValueError, match="path template"):
        request_types.check_template(template)


def test_lua_rendering_quotes_and_json_names(schema):
    assert request_types._lua_string('a"b\\c\n\u00e9') == '"a\\"b\\\\c\\10\\195\\169"'
    assert request_types._lua_key("and") == '["and"]' and request_types._lua_key("is_admin") == "is_admin"
    text = request_types.render(schema, 32, "is nested too deeply")
    assert '["zquant.auth.v1.CreateUserRequest"] = {isAdmin = "is_admin", roleId = "role_id", ' \
           'passwordConfirm = "password_confirm"},' in text
    assert '      is_admin = {name = "is_admin", kind = "bool"},' in text
