"""Engine BacktestResult → the stored Result row (zquant columns + JSON + the proto itself)."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from zquant.engine.v1 import engine_pb2

from task_svc.models import Result, utcnow

RESULT_COLUMNS = ("total_return", "annual_return", "max_drawdown", "sharpe_ratio", "win_rate",
                  "profit_loss_ratio", "alpha", "beta")


def to_plain(msg: Message) -> dict[str, Any]:
    """A message as plain JSON-able data with proto field names: unset optional fields are
    None (undefined metrics are null, never 0), int64 stay numbers, enums are their names."""
    out: dict[str, Any] = {}
    for f in msg.DESCRIPTOR.fields:
        value = getattr(msg, f.name)
        if f.is_repeated:
            if f.type == FieldDescriptor.TYPE_MESSAGE:
                out[f.name] = [to_plain(v) for v in value]
            else:
                out[f.name] = list(value)
        elif f.type == FieldDescriptor.TYPE_MESSAGE:
            out[f.name] = to_plain(value) if msg.HasField(f.name) else None
        elif f.has_presence and not msg.HasField(f.name):
            out[f.name] = None
        elif f.type == FieldDescriptor.TYPE_ENUM:
            out[f.name] = f.enum_type.values_by_number[value].name if value in f.enum_type.values_by_number \
                else value
        else:
            out[f.name] = value
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def build_result(task_id: int, user_id: int, result: engine_pb2.BacktestResult) -> Result:
    metrics = to_plain(result.metrics)
    row = Result(
        task_id=task_id, user_id=user_id,
        metrics_json=_dumps(metrics),
        trades_json=_dumps([to_plain(t) for t in result.trades]),
        portfolio_json=_dumps([to_plain(d) for d in result.daily]),
        result_pb=result.SerializeToString(deterministic=True),
        engine_version=result.engine_version[:64], data_hash=result.data_hash[:128],
        created_at=utcnow(),
    )
    for name in RESULT_COLUMNS:
        setattr(row, name, metrics.get(name))
    return row


def load_result(row: Result) -> engine_pb2.BacktestResult:
    return engine_pb2.BacktestResult.FromString(row.result_pb)
