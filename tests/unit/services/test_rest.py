"""services/rest.py: the one REST JSON dialect, the list/status rendering and the binding checks."""

from __future__ import annotations

import asyncio
import json
import math

import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2, timestamp_pb2
from zquant.api.v1 import rest_pb2
from zquant.auth.v1 import auth_pb2, auth_rest_pb2
from zquant.backtest.v1 import task_pb2, task_rest_pb2
from zquant.engine.v1 import engine_pb2

from services import rest, rest_contract

TASK_REST = task_rest_pb2.DESCRIPTOR.services_by_name["TaskRestService"]


def _options(method: str) -> rest_pb2.RestResponse:
    return rest.rest_options(TASK_REST.methods_by_name[method])


def test_every_declared_field_is_present_so_new_fields_appear_without_code() -> None:
    rendered = rest.to_json_value(task_pb2.Task())
    assert list(rendered) == [f.name for f in task_pb2.Task.DESCRIPTOR.fields]
    assert rendered["id"] == 0 and rendered["error_message"] == "" and rendered["progress"] == 0.0


def test_enums_lower_case_zero_is_null_unknown_number_kept() -> None:
    task = task_pb2.Task(status=task_pb2.Task.Status.COMPLETED)
    assert rest.to_json_value(task)["status"] == "completed"
    assert rest.to_json_value(task_pb2.Task())["status"] is None
    event = task_pb2.TaskEvent(kind=task_pb2.TaskEvent.Kind.SNAPSHOT, task=task)
    assert rest.to_json_value(event)["kind"] == "snapshot"
    unknown = task_pb2.Task()
    unknown.MergeFromString(bytes([5 << 3, 42]))  # status = 42: a newer server's value
    assert rest.to_json_value(unknown)["status"] == 42


def test_unset_messages_and_optional_scalars_are_null_timestamps_rfc3339() -> None:
    ts = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_000_000)
    task = task_pb2.Task(created_at=ts, config=engine_pb2.BacktestConfig(start_date="2013-01-04"))
    rendered = rest.to_json_value(task)
    assert rendered["created_at"] == "2023-11-14T22:13:20.123Z"
    assert rendered["started_at"] is None and rendered["completed_at"] is None
    assert rendered["config"]["initial_capital"] is None  # proto3 optional, unset
    assert rendered["config"]["symbols"] == [] and rendered["config"]["use_daily_basic"] is False
    assert rendered["params"] is None
    metrics = engine_pb2.Metrics(total_return=0.0, total_trades=3)
    m = rest.to_json_value(metrics)
    assert m["total_return"] == 0.0 and m["total_trades"] == 3 and m["alpha"] is None


def test_int64_are_json_numbers_maps_are_objects_non_finite_is_null() -> None:
    portfolio = task_pb2.Portfolio(cash=math.inf, total_value=1.5)
    portfolio.positions["600036.SH"].CopyFrom(task_pb2.PortfolioPosition(quantity=2**40 + 1, profit=math.nan))
    rendered = rest.to_json_value(portfolio)
    assert rendered["cash"] is None and rendered["total_value"] == 1.5
    held = rendered["positions"]["600036.SH"]
    assert held["quantity"] == 2**40 + 1 and isinstance(held["quantity"], int) and held["profit"] is None
    assert json.loads(rest.dumps(rendered)) == rendered  # valid JSON: no NaN/Infinity tokens


def test_struct_params_are_plain_json_whole_numbers_ints() -> None:
    params = struct_pb2.Struct()
    params.update({"window": 20, "ratio": 0.5, "big": 2.0**60, "names": ["a", "b"], "xs": [3, 1.5],
                   "nested": {"on": True, "none": None, "n": 7}})
    rendered = rest.to_json_value(task_pb2.Task(params=params))
    assert rendered["params"] == {"window": 20, "ratio": 0.5, "big": 2.0**60, "names": ["a", "b"], "xs": [3, 1.5],
                                  "nested": {"on": True, "none": None, "n": 7}}
    body = rest.dumps(rendered["params"]).decode()
    # Struct numbers are doubles; the JSON says 20, not 20.0 (services.param_numbers)
    assert '"window":20' in body and '"window":20.' not in body and '"n":7' in body and '"n":7.' not in body
    assert '"xs":[3,1.5]' in body and '"ratio":0.5' in body
    assert isinstance(rendered["params"]["big"], float)  # beyond 2**53 a double is not an exact int


def test_list_response_is_a_bare_array_with_the_total_in_metadata() -> None:
    reply = task_pb2.ListTasksResponse(tasks=[task_pb2.Task(id=2), task_pb2.Task(id=1)], total=40)
    body, metadata = rest.render(reply, _options("ListTasks"))
    assert [t["id"] for t in json.loads(body)] == [2, 1]
    assert metadata == [(rest.TOTAL_HEADER, "40")]


def test_create_is_201_delete_is_204_without_body_plain_is_200() -> None:
    body, metadata = rest.render(task_pb2.Task(id=3), _options("RunBacktest"))
    assert json.loads(body)["id"] == 3 and metadata == [(rest.STATUS_HEADER, "201")]
    assert rest.render(task_pb2.DeleteTaskResponse(), _options("DeleteTask")) == (b"", [(rest.STATUS_HEADER, "204")])
    body, metadata = rest.render(task_pb2.Task(id=3), _options("GetTask"))
    assert metadata == [] and json.loads(body)["id"] == 3


def test_a_typed_document_reply_goes_out_as_it_is() -> None:
    page = httpbody_pb2.HttpBody(content_type="text/html; charset=utf-8", data="<!doctype html>报告".encode())
    body, metadata = rest.respond(page, _options("GetReport"))
    assert body is page and metadata == []
    body, metadata = rest.respond(task_pb2.Task(id=3), _options("GetTask"))
    assert body.content_type == rest.JSON and json.loads(body.data)["id"] == 3


def test_public_rest_methods_are_login_refresh_logout() -> None:
    service = auth_rest_pb2.DESCRIPTOR.services_by_name["AuthRestService"]
    assert rest_contract.public_methods(service) == {f"/zquant.auth.v1.AuthRestService/{m}" for m in
                                            ("Login", "Refresh", "Logout")}


def test_every_rest_service_of_the_repository_binds_cleanly() -> None:
    from protos import openapi

    for service in openapi.rest_services():
        rest_contract.check_binding(service)


def _bad_service(name: str, method: str, request: str, options: rest_pb2.RestResponse,
                 streaming: bool = False) -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name=f"zquant/testonly/{name}.proto", package=f"zquant.testonly.{name}", syntax="proto3",
        dependency=["google/api/httpbody.proto", "zquant/api/v1/rest.proto", "zquant/backtest/v1/task.proto"])
    service = file.service.add(name="BadRestService")
    service.options.Extensions[rest_pb2.rest_service].typed = "zquant.backtest.v1.TaskService"
    m = service.method.add(name=method, input_type=request, output_type=".google.api.HttpBody",
                           server_streaming=streaming)
    m.options.Extensions[rest_pb2.rest].CopyFrom(options)
    return file


@pytest.mark.parametrize(("name", "method", "request_type", "options", "streaming", "error"), [
    ("notwin", "ListEverything", ".zquant.backtest.v1.ListTasksRequest", rest_pb2.RestResponse(), False,
     "has no method ListEverything"),
    ("othertype", "ListTasks", ".zquant.backtest.v1.GetTaskRequest", rest_pb2.RestResponse(), False,
     "request type or streaming differs"),
    ("nolist", "GetTask", ".zquant.backtest.v1.GetTaskRequest", rest_pb2.RestResponse(list_field="id"), False,
     "list_field 'id'"),
    ("status", "GetTask", ".zquant.backtest.v1.GetTaskRequest", rest_pb2.RestResponse(status=302), False,
     "unsupported success status 302"),
    ("opener", "GetTask", ".zquant.backtest.v1.GetTaskRequest", rest_pb2.RestResponse(open_at_once=True), False,
     "open_at_once is for server streams"),
    ("nodoctype", "GetReport", ".zquant.backtest.v1.GetReportRequest", rest_pb2.RestResponse(), False,
     "document_type is set exactly when"),
    ("doctype", "GetTask", ".zquant.backtest.v1.GetTaskRequest", rest_pb2.RestResponse(document_type="text/html"),
     False, "document_type is set exactly when"),
])
def test_binding_mistakes_fail_at_startup(name, method, request_type, options, streaming, error) -> None:
    pool = descriptor_pool.Default()
    pool.Add(_bad_service(name, method, request_type, options, streaming))
    service = pool.FindServiceByName(f"zquant.testonly.{name}.BadRestService")
    with pytest.raises(ValueError, match=error):
        rest_contract.check_binding(service)


class _AsyncTyped:
    """A typed servicer written for grpc.aio, as a service moved to asyncio would be."""

    async def CreateApiKey(self, request, context):
        if request.name == "bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name: bad")
        return auth_pb2.CreateApiKeyResponse(id=5, access_key="zqk_x", name=request.name)


def test_async_typed_servicers_are_bound_the_same_way() -> None:
    async def scenario() -> None:
        server = grpc.aio.server()
        # Only the one method matters here: bind a service whose other methods are never called.
        service = auth_rest_pb2.DESCRIPTOR.services_by_name["AuthRestService"]
        typed = _AsyncTyped()
        for m in service.methods:
            if not hasattr(typed, m.name):
                setattr(typed, m.name, None)
        rest.register_rest_service(server, service, typed)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                call = channel.unary_unary(
                    "/zquant.auth.v1.AuthRestService/CreateApiKey",
                    request_serializer=auth_pb2.CreateApiKeyRequest.SerializeToString,
                    response_deserializer=httpbody_pb2.HttpBody.FromString)
                pending = call(auth_pb2.CreateApiKeyRequest(name="ci"))
                body = await pending
                assert json.loads(body.data)["access_key"] == "zqk_x" and body.content_type == rest.JSON
                assert (rest.STATUS_HEADER, "201") in tuple(await pending.initial_metadata())
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(auth_pb2.CreateApiKeyRequest(name="bad"))
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)

    asyncio.run(scenario())
