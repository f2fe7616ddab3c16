"""Strategy library: CRUD, ownership, templates, code validation (SQLite and PostgreSQL)."""

from __future__ import annotations

import ast
import json

import grpc
import pytest
from tasksvc_helpers import SIMPLE_CODE
from zquant.backtest.v1 import strategy_pb2

from services.errors import field_violations
from task_svc.templates import TEMPLATES

ALICE, BOB, ADMIN, ADMIN2 = "user:1", "user:2", "admin:99", "admin:98"


def create(api, name="mine", code=SIMPLE_CODE, **kw):  # type: ignore[no-untyped-def]
    return api.strategies.CreateStrategy(strategy_pb2.CreateStrategyRequest(name=name, code=code, **kw))


def expect_code(fn, code):  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        fn()
    assert info.value.code() == code, info.value.details()
    return info.value


def test_templates_seeded_and_visible_to_everyone(make_app, connect) -> None:
    app = make_app()
    api = connect(app, ALICE)
    templates = api.strategies.ListTemplates(strategy_pb2.ListTemplatesRequest()).strategies
    assert len(templates) == 9
    assert {t.name for t in templates} == {t.name for t in TEMPLATES}
    for t in templates:
        assert t.is_template and t.user_id == 0 and t.category
        tree = ast.parse(t.code)  # valid Python, defines Strategy(BaseStrategy) with on_bar
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Strategy")
        assert {f.name for f in cls.body if isinstance(f, ast.FunctionDef)} >= {"initialize", "on_bar"}
        schema = json.loads(t.params_schema)
        assert schema["type"] == "object" and schema["properties"]
        # every param the code reads with self.params.get("x", …) is documented in the schema
        read = {c.args[0].value for c in ast.walk(tree) if isinstance(c, ast.Call)
                and isinstance(c.func, ast.Attribute) and c.func.attr == "get"
                and ast.unparse(c.func.value) == "self.params" and isinstance(c.args[0], ast.Constant)}
        assert read and read <= set(schema["properties"]), (t.name, read - set(schema["properties"]))
    value = next(t for t in templates if "PE/PB" in t.name)
    assert "get_daily_basic" in value.code and "is None" in value.code  # tolerates missing daily_basic
    # visible through Get and List to another user as well
    bob = connect(app, BOB)
    got = bob.strategies.GetStrategy(strategy_pb2.GetStrategyRequest(strategy_id=templates[0].id))
    assert got.code == templates[0].code
    listed = bob.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(is_template=True))
    assert listed.total == 9


def test_framework_is_a_documented_strategy(make_app, connect) -> None:
    api = connect(make_app(), ALICE)
    fw = api.strategies.GetStrategyFramework(strategy_pb2.GetStrategyFrameworkRequest())
    tree = ast.parse(fw.code)
    assert any(isinstance(n, ast.ClassDef) and n.name == "Strategy" for n in tree.body)
    assert "from zquant.backtest.strategy import BaseStrategy" in fw.code
    assert "order_target_percent" in fw.code and fw.description


def test_crud_and_ownership(make_app, connect, engine_server) -> None:
    app = make_app()
    alice, bob = connect(app, ALICE), connect(app, BOB)
    s = create(alice, name="My MA", description="moving average", category="trend",
               params_schema='{"type": "object"}')
    assert s.id > 0 and s.user_id == 1 and not s.is_template and s.code == SIMPLE_CODE
    assert engine_server.engine.validate_calls == 1  # validated on the engine before saving

    got = alice.strategies.GetStrategy(strategy_pb2.GetStrategyRequest(strategy_id=s.id))
    assert got.name == "My MA" and got.category == "trend"
    # another user's strategy does not exist for bob
    expect_code(lambda: bob.strategies.GetStrategy(strategy_pb2.GetStrategyRequest(strategy_id=s.id)),
                grpc.StatusCode.NOT_FOUND)
    expect_code(lambda: bob.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=s.id, name="x")), grpc.StatusCode.NOT_FOUND)
    expect_code(lambda: bob.strategies.DeleteStrategy(strategy_pb2.DeleteStrategyRequest(strategy_id=s.id)),
                grpc.StatusCode.NOT_FOUND)
    assert bob.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(is_template=False)).total == 0

    updated = alice.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=s.id, name="Renamed", description=""))
    assert updated.name == "Renamed" and updated.description == "" and updated.category == "trend"
    assert updated.code == SIMPLE_CODE  # unset fields stay
    assert updated.updated_at.ToDatetime() >= s.updated_at.ToDatetime()

    alice.strategies.DeleteStrategy(strategy_pb2.DeleteStrategyRequest(strategy_id=s.id))
    expect_code(lambda: alice.strategies.GetStrategy(strategy_pb2.GetStrategyRequest(strategy_id=s.id)),
                grpc.StatusCode.NOT_FOUND)


def test_templates_admin_only(make_app, connect) -> None:
    app = make_app()
    alice, admin, admin2 = connect(app, ALICE), connect(app, ADMIN), connect(app, ADMIN2)
    expect_code(lambda: create(alice, is_template=True), grpc.StatusCode.PERMISSION_DENIED)
    t = create(admin, name="Admin template", is_template=True, category="trend")
    assert t.is_template and t.user_id == 99
    # visible to alice, but not editable or deletable by her
    assert alice.strategies.GetStrategy(strategy_pb2.GetStrategyRequest(strategy_id=t.id)).name == "Admin template"
    expect_code(lambda: alice.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=t.id, name="hijack")), grpc.StatusCode.PERMISSION_DENIED)
    expect_code(lambda: alice.strategies.DeleteStrategy(strategy_pb2.DeleteStrategyRequest(strategy_id=t.id)),
                grpc.StatusCode.PERMISSION_DENIED)
    # another admin does not own it either
    expect_code(lambda: admin2.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=t.id, name="other admin")), grpc.StatusCode.PERMISSION_DENIED)
    assert admin.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=t.id, name="v2")).name == "v2"
    # system templates (user 0): any admin may edit, users may not
    sys_t = alice.strategies.ListTemplates(strategy_pb2.ListTemplatesRequest()).strategies[0]
    expect_code(lambda: alice.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=sys_t.id, description="mine now")), grpc.StatusCode.PERMISSION_DENIED)
    edited = admin2.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=sys_t.id, description="curated"))
    assert edited.description == "curated" and edited.user_id == 0


def test_code_validation(make_app, connect, engine_server) -> None:
    app = make_app()
    api = connect(app, ALICE)
    bad = "class Strategy:\n    def on_bar(self, context, bar_data)\n        pass\n"
    err = expect_code(lambda: create(api, code=bad), grpc.StatusCode.INVALID_ARGUMENT)
    violations = field_violations(err)
    assert violations and violations[0][0] == "code" and violations[0][1].startswith("line 2: SyntaxError")
    err = expect_code(lambda: create(api, code="x = 1\n"), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == [("code", "strategy code must define class Strategy")]
    expect_code(lambda: create(api, code=""), grpc.StatusCode.INVALID_ARGUMENT)
    expect_code(lambda: create(api, name=""), grpc.StatusCode.INVALID_ARGUMENT)
    expect_code(lambda: create(api, name="x" * 201), grpc.StatusCode.INVALID_ARGUMENT)
    err = expect_code(lambda: create(api, params_schema="{not json"), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err)[0][0] == "params_schema"
    # update re-validates changed code
    s = create(api)
    err = expect_code(lambda: api.strategies.UpdateStrategy(strategy_pb2.UpdateStrategyRequest(
        strategy_id=s.id, code=bad)), grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err)[0][1].startswith("line 2:")
    # engine unreachable: nothing unvalidated is saved
    engine_server.stop()
    before = api.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(is_template=False)).total
    expect_code(lambda: create(api, name="while down"), grpc.StatusCode.UNAVAILABLE)
    assert api.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(is_template=False)).total == before


def test_list_filters_search_and_order(make_app, connect) -> None:
    app = make_app()
    api = connect(app, ALICE)
    a = create(api, name="Alpha trend", category="trend", description="first")
    b = create(api, name="Beta value", category="value", description="cheap 100% stocks")
    c = create(api, name="Gamma", category="trend", description="uses TREND filter")

    def names(**kw):  # type: ignore[no-untyped-def]
        resp = api.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(**kw))
        return [s.name for s in resp.strategies], resp.total

    own = {"is_template": False}
    assert names(**own, order_by="name", order="asc") == (["Alpha trend", "Beta value", "Gamma"], 3)
    assert names(**own, order_by="name", order="desc")[0] == ["Gamma", "Beta value", "Alpha trend"]
    assert names(**own, order_by="id", order="asc")[0] == ["Alpha trend", "Beta value", "Gamma"]
    assert names(**own, order_by="bogus")[0] == ["Gamma", "Beta value", "Alpha trend"]  # created_at desc
    assert names(**own, category="trend", order_by="id", order="asc") == (["Alpha trend", "Gamma"], 2)
    assert names(**own, search="TREND", order_by="id", order="asc") == (["Alpha trend", "Gamma"], 2)
    assert names(**own, search="100%") == (["Beta value"], 1)  # LIKE wildcards are literal
    assert names(**own, search="_") == ([], 0)
    assert names(**own, order_by="id", order="asc", skip=1, limit=1) == (["Beta value"], 3)
    everything = api.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(limit=1000))
    assert everything.total == 12  # own + nine templates
    assert {a.id, b.id, c.id} <= {s.id for s in everything.strategies}
    expect_code(lambda: api.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(limit=1001)),
                grpc.StatusCode.INVALID_ARGUMENT)
    expect_code(lambda: api.strategies.ListStrategies(strategy_pb2.ListStrategiesRequest(skip=-1)),
                grpc.StatusCode.INVALID_ARGUMENT)


def test_unauthenticated(make_app, connect) -> None:
    api = connect(make_app(), "nonsense")
    expect_code(lambda: api.strategies.ListTemplates(strategy_pb2.ListTemplatesRequest()),
                grpc.StatusCode.UNAUTHENTICATED)
