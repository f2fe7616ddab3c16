"""The gateway config and the REST contract, checked without starting anything long-lived.

- deploy/envoy.yaml renders for any ports and passes `envoy --mode validate` (which also loads
  the descriptor set, so it catches annotations Envoy cannot transcode).
- The google.api.http rules in deploy/envoy.pb are exactly the REST table below (the original
  zquant API's paths): a changed path, verb or RPC name breaks zquant compatibility.
- Routes, blocked internal RPCs and the transcoder's service list follow the descriptor.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

import devstack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "envoy.yaml"

# The REST table (the original zquant paths, with zquant's PUT for updates): (verb, path under
# /api/v1) → the REST binding (docs/rest-conventions.md), whose typed twin has the same name.
REST_TABLE = {
    ("POST", "/auth/login"): "AuthRestService.Login",
    ("POST", "/auth/refresh"): "AuthRestService.Refresh",
    ("POST", "/auth/logout"): "AuthRestService.Logout",
    ("GET", "/users/me"): "AuthRestService.GetMe",
    ("POST", "/users"): "AuthRestService.CreateUser",
    ("GET", "/users"): "AuthRestService.ListUsers",
    ("GET", "/users/{user_id}"): "AuthRestService.GetUser",
    ("POST", "/users/{user_id}/reset-password"): "AuthRestService.ResetPassword",
    ("DELETE", "/users/{user_id}"): "AuthRestService.DeleteUser",
    ("PATCH", "/users/{user_id}"): "AuthRestService.UpdateUser",
    ("PUT", "/users/{user_id}"): "AuthRestService.UpdateUser",
    ("GET", "/users/me/apikeys"): "AuthRestService.ListApiKeys",
    ("POST", "/users/me/apikeys"): "AuthRestService.CreateApiKey",
    ("DELETE", "/users/me/apikeys/{key_id}"): "AuthRestService.RevokeApiKey",
    ("PUT", "/users/{user_id}/apikeys/{key_id}/service"): "AuthRestService.SetApiKeyService",
    ("POST", "/backtest/run"): "TaskRestService.RunBacktest",
    ("GET", "/backtest/tasks"): "TaskRestService.ListTasks",
    ("GET", "/backtest/tasks/{task_id}"): "TaskRestService.GetTask",
    ("GET", "/backtest/tasks/{task_id}/result"): "TaskRestService.GetResult",
    ("GET", "/backtest/tasks/{task_id}/performance"): "TaskRestService.GetPerformance",
    ("GET", "/backtest/strategies/framework"): "StrategyRestService.GetStrategyFramework",
    ("GET", "/backtest/tasks/{task_id}/watch"): "TaskRestService.WatchTask",
    ("POST", "/backtest/tasks/{task_id}/cancel"): "TaskRestService.CancelTask",
    ("DELETE", "/backtest/tasks/{task_id}"): "TaskRestService.DeleteTask",
    ("GET", "/backtest/results"): "TaskRestService.ListResults",
    ("POST", "/backtest/strategies"): "StrategyRestService.CreateStrategy",
    ("GET", "/backtest/strategies"): "StrategyRestService.ListStrategies",
    ("GET", "/backtest/strategies/templates"): "StrategyRestService.ListTemplates",
    ("GET", "/backtest/strategies/{strategy_id}"): "StrategyRestService.GetStrategy",
    ("PUT", "/backtest/strategies/{strategy_id}"): "StrategyRestService.UpdateStrategy",
    ("PATCH", "/backtest/strategies/{strategy_id}"): "StrategyRestService.UpdateStrategy",
    ("DELETE", "/backtest/strategies/{strategy_id}"): "StrategyRestService.DeleteStrategy",
    ("GET", "/backtest/data/symbols"): "EngineRestService.ListSymbols",
}
# Paths beyond the original zquant API; listed so that any other addition fails.
REST_EXTRAS = {
    ("GET", "/backtest/watch"): "TaskRestService.WatchTasks",  # all of the caller's tasks
    # Light views of a result for the console (issue 11).
    ("GET", "/backtest/tasks/{task_id}/equity"): "TaskRestService.GetEquity",
    ("GET", "/backtest/tasks/{task_id}/orders"): "TaskRestService.ListOrders",
    ("GET", "/backtest/tasks/{task_id}/orders/summary"): "TaskRestService.GetOrderSummary",
    ("GET", "/backtest/tasks/{task_id}/trades"): "TaskRestService.ListTrades",
    ("GET", "/backtest/tasks/{task_id}/round_trips"): "TaskRestService.ListRoundTrips",
    ("GET", "/backtest/tasks/{task_id}/ex_rights"): "TaskRestService.ListExRights",
    ("GET", "/backtest/tasks/{task_id}/positions"): "TaskRestService.GetPositions",
    ("GET", "/backtest/tasks/{task_id}/logs"): "TaskRestService.GetLogs",
    ("GET", "/backtest/tasks/{task_id}/bars"): "TaskRestService.GetBars",
    ("GET", "/backtest/tasks/{task_id}/report"): "TaskRestService.GetReport",
    # Parameter sweeps
    ("POST", "/backtest/sweeps"): "SweepRestService.CreateSweep",
    ("POST", "/backtest/sweeps:estimate"): "SweepRestService.EstimateSweep",
    ("GET", "/backtest/sweeps"): "SweepRestService.ListSweeps",
    ("GET", "/backtest/sweeps/{sweep_id}"): "SweepRestService.GetSweep",
    ("GET", "/backtest/sweeps/{sweep_id}/trials"): "SweepRestService.ListTrials",
    ("GET", "/backtest/sweeps/{sweep_id}/heatmap"): "SweepRestService.GetHeatmap",
    ("GET", "/backtest/sweeps/{sweep_id}/folds"): "SweepRestService.GetFolds",
    ("GET", "/backtest/sweeps/{sweep_id}/watch"): "SweepRestService.WatchSweep",
    ("POST", "/backtest/sweeps/{sweep_id}/cancel"): "SweepRestService.CancelSweep",
    ("DELETE", "/backtest/sweeps/{sweep_id}"): "SweepRestService.DeleteSweep",
    ("POST", "/backtest/sweeps/{sweep_id}/trials/{trial_number}:promote"): "SweepRestService.PromoteTrial",
}
# Typed RPCs for other services only: no REST binding, and blocked at the gateway.
INTERNAL_RPCS = {
    "zquant.auth.v1.AuthService/Authenticate",
    "zquant.auth.v1.AuthService/GetSigningKeys",
    "zquant.engine.v1.EngineService/RunBacktest",
    "zquant.engine.v1.EngineService/ValidateStrategy",
    "zquant.engine.v1.EngineService/ValidateBacktest",
    "zquant.engine.v1.EngineService/GetDailyBars",
    "zquant.engine.v1.EngineService/RunTrials",
    "zquant.engine.v1.EngineService/GetDataFingerprint",
}
STREAMING_ROUTES = {"zquant.backtest.v1.TaskRestService/WatchTask", "zquant.backtest.v1.TaskRestService/WatchTasks",
                    "zquant.backtest.v1.SweepRestService/WatchSweep"}
CLUSTER_OF_REST_SERVICE = {
    "zquant.auth.v1.AuthRestService": "auth",
    "zquant.backtest.v1.TaskRestService": "task",
    "zquant.backtest.v1.StrategyRestService": "task",
    "zquant.backtest.v1.SweepRestService": "task",
    "zquant.engine.v1.EngineRestService": "engine",
}


@pytest.fixture(scope="module")
def services(envoy_descriptor: Path) -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    """zquant services in the descriptor set, by full name."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(envoy_descriptor.read_bytes())
    return {
        f"{file.package}.{service.name}": service
        for file in fds.file
        if file.package.startswith("zquant.")
        for service in file.service
    }


@pytest.fixture(scope="module")
def envoy() -> str:
    binary = devstack.envoy_binary()
    if binary is None:
        pytest.skip("envoy binary not installed")
    return binary


def http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    if not method.options.HasExtension(annotations_pb2.http):
        return None
    return method.options.Extensions[annotations_pb2.http]


def verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def rest_services(services) -> dict[str, descriptor_pb2.ServiceDescriptorProto]:
    return {name: service for name, service in services.items() if name.endswith("RestService")}


def rest_rules(services) -> dict[tuple[str, str], str]:
    rules: dict[tuple[str, str], str] = {}
    for full_name, service in rest_services(services).items():
        for method in service.method:
            rule = http_rule(method)
            assert rule is not None, f"{full_name}.{method.name}: a REST binding without google.api.http"
            for one in [rule, *rule.additional_bindings]:
                verb, path = verb_and_path(one)
                assert path.startswith("/api/v1/"), f"{full_name}.{method.name}: {path} is outside /api/v1"
                key = (verb, path.removeprefix("/api/v1"))
                assert key not in rules, f"{key} mapped twice"
                rules[key] = f"{service.name}.{method.name}"
    return rules


def test_rest_paths_match_the_documented_table(services):
    assert rest_rules(services) == {**REST_TABLE, **REST_EXTRAS}


def test_typed_rpcs_have_no_http_rule_and_only_internal_ones_lack_a_rest_binding(services):
    typed = {name: s for name, s in services.items() if name not in rest_services(services)}
    annotated = [f"{n}/{m.name}" for n, s in typed.items() for m in s.method if http_rule(m) is not None]
    assert annotated == [], "typed RPCs must not carry google.api.http (docs/rest-conventions.md)"
    bound = {f"{n.replace('RestService', 'Service')}/{m.name}"
             for n, s in rest_services(services).items() for m in s.method}
    unbound = {f"{n}/{m.name}" for n, s in typed.items() for m in s.method} - bound
    assert unbound == INTERNAL_RPCS


def test_response_body_only_names_http_body_fields(services, envoy_descriptor):
    """Envoy 1.40's transcoder refuses `response_body` unless the field is a google.api.HttpBody
    ("Setting response_body is not supported yet for non-HttpBody fields"), and then fails to
    load the whole config. Checked here so the message names the RPCs."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(envoy_descriptor.read_bytes())
    messages = {f".{file.package}.{message.name}": message for file in fds.file for message in file.message_type}
    offenders = []
    for full_name, service in services.items():
        for method in service.method:
            rule = http_rule(method)
            if rule is None or not rule.response_body:
                continue
            fields = {f.name: f for f in messages[method.output_type].field}
            target = fields.get(rule.response_body)
            if target is None or target.type_name != ".google.api.HttpBody":
                offenders.append(f"{full_name}.{method.name} (response_body: {rule.response_body!r})")
    assert not offenders, "Envoy cannot transcode response_body for: " + ", ".join(offenders)


def test_transcoder_lists_exactly_the_rest_services(services):
    text = TEMPLATE.read_text()
    listed = re.findall(r"^\s+- (zquant\.[\w.]+Service)$", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(rest_services(services))


def test_routes_cover_every_service_and_block_internal_rpcs(services):
    text = TEMPLATE.read_text()
    prefixes = dict(re.findall(r"match: \{prefix: /([\w.]+)/\}\n\s+route: \{cluster: (\w+)", text))
    assert prefixes == {name: CLUSTER_OF_REST_SERVICE[name] for name in rest_services(services)}
    blocked = set(re.findall(r"match: \{path: /([\w./]+)\}\n\s+direct_response: \{status: 404", text))
    assert blocked == INTERNAL_RPCS
    streaming = dict(re.findall(r"match: \{path: /([\w./]+)\}\n\s+route: \{cluster: \w+, timeout: (\w+)", text))
    assert streaming == dict.fromkeys(STREAMING_ROUTES, "0s")
    # Route order matters: exact paths must come before the prefix that would swallow them.
    first_prefix = text.index("match: {prefix: /zquant.")
    for path in INTERNAL_RPCS | STREAMING_ROUTES:
        assert text.index(f"match: {{path: /{path}}}") < first_prefix


def test_default_render_changes_only_the_generated_file_paths():
    defaults = devstack.GatewayConfig(gateway_host="0.0.0.0")
    rendered = devstack.render_envoy_config(defaults.render_values())
    changed = [
        (old, new)
        for old, new in zip(TEMPLATE.read_text().splitlines(), rendered.splitlines(), strict=True)
        if old != new
    ]
    assert changed == [
        (
            "                              filename: deploy/openapi.json  # render: openapi_document",
            f"                              filename: {devstack.DESCRIPTOR.with_name('openapi.json')}"
            "  # render: openapi_document",
        ),
        (
            "                        filename: deploy/request_check.lua  # render: request_check",
            f"                        filename: {ROOT / 'deploy' / 'request_check.lua'}  # render: request_check",
        ),
        (
            "                      proto_descriptor: deploy/envoy.pb  # render: proto_descriptor",
            f"                      proto_descriptor: {devstack.DESCRIPTOR}  # render: proto_descriptor",
        ),
    ]


def test_render_substitutes_ports_and_addresses(tmp_path):
    config = devstack.GatewayConfig(
        gateway_port=18080,
        admin_port=19901,
        gateway_host="127.0.0.1",
        auth_addr="0.0.0.0:51051",  # a wildcard listen address is reached via loopback
        task_addr="task.internal:51052",
        engine_addr="[::1]:51053",
        descriptor=tmp_path / "dir with space" / "envoy.pb",
    )
    text = devstack.render_envoy_config(config.render_values())
    assert "port_value: 18080  # render: gateway_port" in text
    assert "port_value: 19901  # render: admin_port" in text
    assert "address: 127.0.0.1  # render: auth_host" in text
    assert "port_value: 51051  # render: auth_port" in text
    assert "address: task.internal  # render: task_host" in text
    assert 'address: "::1"  # render: engine_host' in text
    assert f'proto_descriptor: "{tmp_path}/dir with space/envoy.pb"' in text
    for default in ("8080", "9901", "50051", "50052", "50053"):
        assert f"port_value: {default} " not in text


def test_render_rejects_missing_or_unknown_values():
    values = devstack.GatewayConfig().render_values()
    with pytest.raises(ValueError, match="exactly"):
        devstack.render_envoy_config({k: v for k, v in values.items() if k != "auth_port"})
    with pytest.raises(ValueError, match="exactly"):
        devstack.render_envoy_config({**values, "auth_prot": 1})
    template = TEMPLATE.read_text().replace("# render: engine_port", "")
    with pytest.raises(ValueError, match="engine_port"):
        devstack.render_envoy_config(values, template)


def test_committed_config_validates_from_the_repo_root(envoy, envoy_descriptor):
    if envoy_descriptor != devstack.DESCRIPTOR:
        pytest.skip("the committed file names deploy/envoy.pb")
    result = devstack.validate_envoy_config(Path("deploy/envoy.yaml"), envoy, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "ports",
    [
        {},  # defaults
        {
            "gateway_port": 28080,
            "admin_port": 29901,
            "auth_addr": "127.0.0.1:60051",
            "task_addr": "localhost:60052",
            "engine_addr": "0.0.0.0:60053",
        },
    ],
)
def test_rendered_config_passes_envoy_validate(envoy, envoy_descriptor, tmp_path, ports):
    config = devstack.GatewayConfig(descriptor=envoy_descriptor, **ports)
    path = devstack.write_envoy_config(tmp_path, config)
    # Validation runs the request check's Lua, which loads its JSON types from the path
    # devstack gives Envoy, wherever Envoy runs.
    result = devstack.validate_envoy_config(path, envoy, cwd=tmp_path, env=config.envoy_env(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_writes_one_endpoint_per_replica(envoy, envoy_descriptor, tmp_path):
    config = devstack.GatewayConfig(
        descriptor=envoy_descriptor, task_addr="127.0.0.1:60052, 0.0.0.0:60062", engine_addr="127.0.0.1:60053"
    )
    path = devstack.write_envoy_config(tmp_path, config)
    clusters = {c["name"]: c for c in yaml.safe_load(path.read_text())["static_resources"]["clusters"]}
    sockets = {
        name: [e["endpoint"]["address"]["socket_address"] for g in c["load_assignment"]["endpoints"]
               for e in g["lb_endpoints"]]
        for name, c in clusters.items()
    }
    endpoints = {name: [(s["address"], s["port_value"]) for s in found] for name, found in sockets.items()}
    assert endpoints == {
        "auth": [("127.0.0.1", 50051)],
        "task": [("127.0.0.1", 60052), ("127.0.0.1", 60062)],
        "engine": [("127.0.0.1", 60053)],
    }
    result = devstack.validate_envoy_config(path, envoy)
    assert result.returncode == 0, result.stdout + result.stderr
    values = config.render_values()
    with pytest.raises(ValueError, match="one length"):
        devstack.render_envoy_config({**values, "task_port": [60052]})


def test_the_request_check_fails_closed_without_its_json_types(envoy, envoy_descriptor, tmp_path):
    """A gateway whose request check cannot load its types does not start (no unchecked bodies)."""
    config = devstack.GatewayConfig(descriptor=envoy_descriptor)
    path = devstack.write_envoy_config(tmp_path, config)
    env = {**os.environ, "ZQ_GATEWAY_REQUEST_TYPES": str(tmp_path / "missing.lua")}
    result = devstack.validate_envoy_config(path, envoy, cwd=tmp_path, env=env)
    assert result.returncode != 0
    assert "missing.lua" in result.stdout + result.stderr
