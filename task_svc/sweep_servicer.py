"""SweepService over gRPC (grpc.aio; unary methods run on the executor, the watch is an async
generator): proto ↔ domain only. Rules live in sweeps.py."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2
from zquant.backtest.v1 import sweep_pb2, sweep_pb2_grpc, task_pb2
from zquant.engine.v1 import engine_pb2

from services.offload import offloaded
from services.param_numbers import params_from_struct, plain_number
from services.principal import current_principal
from task_svc.servicer import task_to_pb, timestamp
from task_svc.sweeps import FoldsView, SweepInput, Sweeps, SweepView, TrialView, WatchEvent, _loads
from task_svc.tasks import stored_config

_METHODS = {sweep_pb2.GRID: "grid", sweep_pb2.RANDOM: "random", sweep_pb2.TPE: "tpe"}
_METHOD_PB = {"GRID": sweep_pb2.GRID, "RANDOM": sweep_pb2.RANDOM, "TPE": sweep_pb2.TPE}
_VALIDATION = {sweep_pb2.Validation.NONE: "none", sweep_pb2.Validation.HOLDOUT: "holdout",
               sweep_pb2.Validation.WALK_FORWARD: "walk_forward"}
_VALIDATION_PB = {v: k for k, v in _VALIDATION.items()}
_METRIC_FIELDS = {f.name for f in engine_pb2.Metrics.DESCRIPTOR.fields}


def _number(value: float, as_float: bool) -> int | float:
    return float(value) if as_float else plain_number(float(value))


def _plain(value: Any, as_float: bool) -> Any:
    if isinstance(value, float):
        return _number(value, as_float)
    return value


def space_dict(space: Any) -> dict[str, Any]:
    """The proto's ParamSpace map as sweeplib's space: JSON numbers arrive as doubles, so whole
    numbers become ints (services.param_numbers) unless ``type`` says "float" (and ``type: "int"``
    rounds nothing — a fractional bound of an int parameter is sweeplib's to reject). An int
    space yields int trial parameters (sweeplib.space)."""
    out: dict[str, Any] = {}
    for name, ps in space.items():
        as_float = ps.type.strip().lower() == "float"
        if len(ps.values):
            out[name] = {"values": [_plain(json_format.MessageToDict(v), as_float) for v in ps.values]}
            continue
        entry: dict[str, Any] = {}
        for key in ("min", "max", "step"):
            if ps.HasField(key):
                entry[key] = _number(getattr(ps, key), as_float)
        if ps.log:
            entry["log"] = True
        out[name] = entry
    return out


def space_pb(space: dict[str, Any]) -> dict[str, sweep_pb2.ParamSpace]:
    out: dict[str, sweep_pb2.ParamSpace] = {}
    for name, entry in space.items():
        ps = sweep_pb2.ParamSpace()
        if isinstance(entry, dict):
            for v in entry.get("values") or []:
                ps.values.append(json_format.ParseDict(v, struct_pb2.Value()))
            for key in ("min", "max", "step"):
                if entry.get(key) is not None:
                    setattr(ps, key, float(entry[key]))
            ps.log = bool(entry.get("log", False))
            if any(isinstance(entry.get(k), float) for k in ("min", "max", "step")) or any(
                    isinstance(v, float) for v in entry.get("values") or []):
                ps.type = "float"  # so the space read back and sent again is the same space
            elif entry.get("min") is not None:
                ps.type = "int"  # min/max/step are doubles in the message: say the range is of ints
        out[name] = ps
    return out


def sweep_input(request: sweep_pb2.CreateSweepRequest) -> SweepInput:
    search: dict[str, Any] = {"space": space_dict(request.space)}
    if request.method:
        search["method"] = _METHODS.get(request.method, str(request.method))
    if request.max_trials:
        search["max_trials"] = request.max_trials
    search["seed"] = request.seed
    if request.constraints:
        search["constraints"] = list(request.constraints)
    if request.HasField("objective") and (request.objective.metric or request.objective.direction):
        search["objective"] = {k: v for k, v in (("metric", request.objective.metric or "sharpe_ratio"),
                                                 ("direction", request.objective.direction)) if v}
    if request.result_constraints:
        search["result_constraints"] = list(request.result_constraints)
    v = request.validation
    if request.HasField("validation") and v.kind not in (sweep_pb2.Validation.KIND_UNSPECIFIED,
                                                         sweep_pb2.Validation.NONE):
        validation: dict[str, Any] = {"kind": _VALIDATION.get(v.kind, str(v.kind))}
        if v.in_sample_end:
            validation["in_sample_end"] = v.in_sample_end
        for key in ("train_days", "test_days", "step_days"):
            if getattr(v, key):
                validation[key] = getattr(v, key)
        if v.anchored:
            validation["anchored"] = True
        search["validation"] = validation
    if request.max_parallel:
        search["max_parallel"] = request.max_parallel
    if request.HasField("target"):
        search["target"] = request.target
    params = params_from_struct(request.params) if request.HasField("params") else {}
    return SweepInput(strategy_id=request.strategy_id, strategy_code=request.strategy_code,
                      strategy_name=request.strategy_name, config=request.config,
                      params=params, search=search)


def metrics_pb(metrics: dict[str, Any] | None) -> engine_pb2.Metrics | None:
    if metrics is None:
        return None
    kwargs: dict[str, Any] = {}
    for k, v in metrics.items():
        if k in _METRIC_FIELDS and v is not None and not (isinstance(v, float) and not math.isfinite(v)):
            kwargs[k] = int(v) if k in ("total_trades", "closed_trades") else v
    return engine_pb2.Metrics(**kwargs)


def _struct(d: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(d)
    return s


def trial_pb(view: TrialView, full_params: dict[str, Any]) -> sweep_pb2.Trial:
    t = view.row
    msg = sweep_pb2.Trial(
        number=t.number, sweep_id=t.sweep_id, params=_struct(full_params),
        status=sweep_pb2.Trial.Status.Value(t.status), ranked=view.ranked, rank=view.rank, fold=t.fold,
        phase=sweep_pb2.Trial.Phase.Value(t.phase), start_date=t.start_date, end_date=t.end_date,
        error_message=t.error_message, seconds=t.seconds, attempts=t.attempts, trades=t.trades,
        finished_at=timestamp(t.finished_at))
    metrics = metrics_pb(view.metrics)
    if metrics is not None:
        msg.metrics.CopyFrom(metrics)
    if t.objective is not None and math.isfinite(t.objective):
        msg.objective = t.objective
    return msg


def sweep_pb(view: SweepView, *, with_code: bool = False) -> sweep_pb2.Sweep:
    s = view.sweep
    search = json.loads(s.request_json)
    base = json.loads(s.params_json or "{}")
    objective = search.get("objective") or {}
    validation = search.get("validation") or {}
    c = view.counts
    msg = sweep_pb2.Sweep(
        id=s.id, user_id=s.user_id, status=sweep_pb2.Sweep.Status.Value(s.status), strategy_id=s.strategy_id or 0,
        strategy_name=s.strategy_name, method=_METHOD_PB.get(s.method, sweep_pb2.GRID),
        config=stored_config(s.config_json), params=_struct(base),
        space=space_pb(search.get("space") or {}), constraints=search.get("constraints") or [],
        objective=sweep_pb2.Objective(metric=objective.get("metric", "sharpe_ratio"),
                                      direction=objective.get("direction", "maximize")),
        result_constraints=search.get("result_constraints") or [],
        validation=sweep_pb2.Validation(
            kind=_VALIDATION_PB.get(str(validation.get("kind", "none")), sweep_pb2.Validation.NONE),
            in_sample_end=validation.get("in_sample_end", ""), train_days=validation.get("train_days", 0),
            test_days=validation.get("test_days", 0), step_days=validation.get("step_days", 0),
            anchored=bool(validation.get("anchored", False))),
        max_trials=s.max_trials, max_parallel=s.max_parallel, seed=int(search.get("seed") or 0),
        trials_total=c.total, queued=c.queued, running=c.running, done=c.done, failed=c.failed, cached=c.cached,
        skipped=c.skipped, trials_evaluated=view.evaluated, elapsed_seconds=view.elapsed_seconds,
        error_message=s.error_message, created_at=timestamp(s.created_at), started_at=timestamp(s.started_at),
        completed_at=timestamp(s.completed_at), strategy_code=s.strategy_code if with_code else "")
    if search.get("target") is not None:
        msg.target = float(search["target"])
    if view.best is not None:
        msg.best.CopyFrom(trial_pb(view.best, {**base, **view.best.params}))
    if view.deflated_sharpe is not None:
        msg.deflated_sharpe = view.deflated_sharpe
    if view.eta_seconds is not None:
        msg.eta_seconds = view.eta_seconds
    return msg


def folds_pb(sweep_id: int, base: dict[str, Any], f: FoldsView) -> sweep_pb2.SweepFolds:
    msg = sweep_pb2.SweepFolds(sweep_id=sweep_id, kind=_VALIDATION_PB.get(f.kind, sweep_pb2.Validation.NONE),
                               stitched_dates=f.dates, stitched_nav=f.nav)
    for fv in f.folds:
        fold = sweep_pb2.Fold(index=fv.index, train_start=fv.train_start, train_end=fv.train_end,
                              test_start=fv.test_start, test_end=fv.test_end)
        if fv.best is not None:
            fold.best_trial = fv.best.row.number
            fold.best_params.CopyFrom(_struct({**base, **fv.best.params}))
            sharpe = (fv.best.metrics or {}).get("sharpe_ratio")
            if sharpe is not None:
                fold.in_sample_sharpe = sharpe
        if fv.out_of_sample is not None:
            fold.out_of_sample_trial = fv.out_of_sample.row.number
            m = fv.out_of_sample.metrics or {}
            if m.get("sharpe_ratio") is not None:
                fold.out_of_sample_sharpe = m["sharpe_ratio"]
            if m.get("total_return") is not None:
                fold.out_of_sample_return = m["total_return"]
        msg.folds.append(fold)
    if f.total_return is not None:
        msg.stitched_return = f.total_return
    if f.sharpe is not None:
        msg.stitched_sharpe = f.sharpe
    return msg


class SweepServicer(sweep_pb2_grpc.SweepServiceServicer):
    def __init__(self, sweeps: Sweeps) -> None:
        self.sweeps = sweeps

    @offloaded
    def CreateSweep(self, request: sweep_pb2.CreateSweepRequest) -> sweep_pb2.Sweep:
        who = current_principal()
        sweep = self.sweeps.create(who, sweep_input(request))
        return sweep_pb(self.sweeps.view(who, sweep.id))

    @offloaded
    def EstimateSweep(self, request: sweep_pb2.CreateSweepRequest) -> sweep_pb2.SweepEstimate:
        e = self.sweeps.estimate(current_principal(), sweep_input(request))
        return sweep_pb2.SweepEstimate(trials=e.trials, cached=e.cached, seconds=e.seconds, basis=e.basis)

    @offloaded
    def ListSweeps(self, request: sweep_pb2.ListSweepsRequest) -> sweep_pb2.ListSweepsResponse:
        views, total = self.sweeps.list_sweeps(current_principal(), request.skip, request.limit, request.order_by,
                                               request.order)
        return sweep_pb2.ListSweepsResponse(sweeps=[sweep_pb(v) for v in views], total=total)

    @offloaded
    def GetSweep(self, request: sweep_pb2.GetSweepRequest) -> sweep_pb2.Sweep:
        return sweep_pb(self.sweeps.view(current_principal(), request.sweep_id), with_code=True)

    @offloaded
    def ListTrials(self, request: sweep_pb2.ListTrialsRequest) -> sweep_pb2.ListTrialsResponse:
        who = current_principal()
        status = sweep_pb2.Trial.Status.Name(request.status) if request.status in \
            sweep_pb2.Trial.Status.values() and request.status else None
        views, total = self.sweeps.trials(who, request.sweep_id, request.skip, request.limit, request.order_by,
                                          request.order, status)
        base = json.loads(self.sweeps.get_sweep(who, request.sweep_id).params_json or "{}")
        return sweep_pb2.ListTrialsResponse(trials=[trial_pb(v, {**base, **v.params}) for v in views], total=total)

    @offloaded
    def GetHeatmap(self, request: sweep_pb2.GetHeatmapRequest) -> sweep_pb2.Heatmap:
        xs, ys, values, metric, agg = self.sweeps.heatmap(current_principal(), request.sweep_id, request.x.strip(),
                                                          request.y.strip(), request.metric, request.agg)
        return sweep_pb2.Heatmap(
            sweep_id=request.sweep_id, x=request.x.strip(), y=request.y.strip(), metric=metric, agg=agg,
            x_values=[json_format.ParseDict(v, struct_pb2.Value()) for v in xs],
            y_values=[json_format.ParseDict(v, struct_pb2.Value()) for v in ys], values=values)

    @offloaded
    def GetFolds(self, request: sweep_pb2.GetFoldsRequest) -> sweep_pb2.SweepFolds:
        who = current_principal()
        folds = self.sweeps.folds(who, request.sweep_id)
        sweep = self.sweeps.get_sweep(who, request.sweep_id)
        return folds_pb(request.sweep_id, _loads(sweep.params_json, {}), folds)

    async def WatchSweep(self, request: sweep_pb2.WatchSweepRequest,
                         context: grpc.aio.ServicerContext) -> AsyncIterator[sweep_pb2.SweepEvent]:
        who = current_principal()
        base: dict[str, Any] | None = None
        async for event in self.sweeps.watch(who.user_id, request.sweep_id):
            if base is None:
                base = json.loads(event.view.sweep.params_json or "{}")
            yield self._event(event, base)

    @staticmethod
    def _event(event: WatchEvent, base: dict[str, Any]) -> sweep_pb2.SweepEvent:
        msg = sweep_pb2.SweepEvent(kind=sweep_pb2.SweepEvent.Kind.Value(event.kind), sweep=sweep_pb(event.view),
                                   terminal=event.terminal)
        if event.trial is not None:
            msg.trial.CopyFrom(trial_pb(event.trial, {**base, **event.trial.params}))
        return msg

    @offloaded
    def CancelSweep(self, request: sweep_pb2.CancelSweepRequest) -> sweep_pb2.Sweep:
        who = current_principal()
        self.sweeps.cancel(who, request.sweep_id)
        return sweep_pb(self.sweeps.view(who, request.sweep_id))

    @offloaded
    def DeleteSweep(self, request: sweep_pb2.DeleteSweepRequest) -> sweep_pb2.DeleteSweepResponse:
        self.sweeps.delete(current_principal(), request.sweep_id)
        return sweep_pb2.DeleteSweepResponse()

    @offloaded
    def PromoteTrial(self, request: sweep_pb2.PromoteTrialRequest) -> task_pb2.Task:
        return task_to_pb(self.sweeps.promote(current_principal(), request.sweep_id, request.trial_number))
