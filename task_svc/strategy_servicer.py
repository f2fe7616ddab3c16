"""StrategyService over gRPC (grpc.aio, methods run on the executor): proto ↔ domain only.
Rules live in strategies.py."""

from __future__ import annotations

from zquant.backtest.v1 import strategy_pb2, strategy_pb2_grpc

from services.offload import offloaded
from services.paging import parse_page
from services.principal import Principal, current_principal
from task_svc.models import Strategy
from task_svc.servicer import timestamp
from task_svc.strategies import ALLOWED_ORDER, Strategies, StrategyInput, StrategyPatch


def strategy_to_pb(s: Strategy, who: Principal) -> strategy_pb2.Strategy:
    may_change = Strategies.may_change(who, s)
    return strategy_pb2.Strategy(
        id=s.id, user_id=s.user_id, name=s.name, description=s.description, category=s.category, code=s.code,
        params_schema=s.params_schema, is_template=s.is_template, created_at=timestamp(s.created_at),
        updated_at=timestamp(s.updated_at), can_edit=may_change, can_delete=may_change)


class StrategyServicer(strategy_pb2_grpc.StrategyServiceServicer):
    def __init__(self, strategies: Strategies) -> None:
        self.strategies = strategies

    @offloaded
    def GetStrategyFramework(self, request: strategy_pb2.GetStrategyFrameworkRequest) -> strategy_pb2.StrategyFramework:
        current_principal()
        code, description = self.strategies.framework()
        return strategy_pb2.StrategyFramework(code=code, description=description)

    @offloaded
    def CreateStrategy(self, request: strategy_pb2.CreateStrategyRequest) -> strategy_pb2.Strategy:
        who = current_principal()
        return strategy_to_pb(self.strategies.create(who, StrategyInput(
            name=request.name, code=request.code, description=request.description, category=request.category,
            params_schema=request.params_schema, is_template=request.is_template)), who)

    @offloaded
    def ListStrategies(self, request: strategy_pb2.ListStrategiesRequest) -> strategy_pb2.ListStrategiesResponse:
        who = current_principal()
        page = parse_page(request.skip, request.limit, request.order_by, request.order, ALLOWED_ORDER)
        rows, total = self.strategies.list_strategies(
            who, page, category=request.category, search=request.search,
            is_template=request.is_template if request.HasField("is_template") else None)
        return strategy_pb2.ListStrategiesResponse(strategies=[strategy_to_pb(s, who) for s in rows], total=total)

    @offloaded
    def ListTemplates(self, request: strategy_pb2.ListTemplatesRequest) -> strategy_pb2.ListStrategiesResponse:
        who = current_principal()
        page = parse_page(request.skip, request.limit, "id", "asc", ALLOWED_ORDER)
        rows, total = self.strategies.list_templates(who, page, request.category)
        return strategy_pb2.ListStrategiesResponse(strategies=[strategy_to_pb(s, who) for s in rows], total=total)

    @offloaded
    def GetStrategy(self, request: strategy_pb2.GetStrategyRequest) -> strategy_pb2.Strategy:
        who = current_principal()
        return strategy_to_pb(self.strategies.get(who, request.strategy_id), who)

    @offloaded
    def UpdateStrategy(self, request: strategy_pb2.UpdateStrategyRequest) -> strategy_pb2.Strategy:
        def opt(name: str) -> str | None:
            return getattr(request, name) if request.HasField(name) else None

        who = current_principal()
        return strategy_to_pb(self.strategies.update(who, request.strategy_id, StrategyPatch(
            name=opt("name"), code=opt("code"), description=opt("description"), category=opt("category"),
            params_schema=opt("params_schema"))), who)

    @offloaded
    def DeleteStrategy(self, request: strategy_pb2.DeleteStrategyRequest) -> strategy_pb2.DeleteStrategyResponse:
        self.strategies.delete(current_principal(), request.strategy_id)
        return strategy_pb2.DeleteStrategyResponse()
