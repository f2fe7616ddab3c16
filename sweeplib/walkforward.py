"""Validation: HOLDOUT and WALK_FORWARD folds on the trading calendar, and the stitched
out-of-sample equity.

Request shapes (``validation`` of a sweep)::

    {"kind": "none"}
    {"kind": "holdout", "in_sample_end": "2015-06-30"}      # in sample: first day … that date
    {"kind": "walk_forward", "train_days": 250, "test_days": 60, "step_days": 60, "anchored": false}

Lengths count trading days of the backtest's calendar (the days the engine runs in the
configured period), never calendar days. Fold k's test window starts ``train_days + k·step_days``
trading days into the period and is ``test_days`` long; its training window is the ``train_days``
before it (rolling) or everything from the first day (anchored). Only whole folds are made, and
``step_days ≥ test_days`` so test windows never overlap. Per fold a sweep searches in sample and
runs the best point out of sample; ``stitch`` chains the test windows' daily returns into one
equity curve.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sweeplib.errors import SweepInputError

Kind = Literal["none", "holdout", "walk_forward"]
MAX_FOLDS = 100


@dataclass(frozen=True)
class Validation:
    kind: Kind = "none"
    in_sample_end: str | None = None
    train_days: int = 0
    test_days: int = 0
    step_days: int = 0
    anchored: bool = False


@dataclass(frozen=True)
class Fold:
    """One split: in sample ``train_start … train_end``, out of sample ``test_start … test_end``
    (inclusive trading days)."""

    index: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    train_days: int
    test_days: int


def _pos_int(v: Any, field: str) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > 100_000:
        raise SweepInputError(field, "must be a whole number of trading days ≥ 1")
    return v


def parse_validation(raw: Any, field: str = "validation") -> Validation:
    if raw is None:
        return Validation()
    if not isinstance(raw, Mapping):
        raise SweepInputError(field, "must be an object with kind")
    unknown = set(raw) - {"kind", "in_sample_end", "train_days", "test_days", "step_days", "anchored"}
    if unknown:
        raise SweepInputError(f"{field}.{sorted(unknown)[0]}", "unknown key")
    kind = str(raw.get("kind") or "none").lower().replace("-", "_")
    if kind not in ("none", "holdout", "walk_forward"):
        raise SweepInputError(f"{field}.kind", "must be none, holdout or walk_forward")
    if kind == "none":
        return Validation()
    if kind == "holdout":
        end = raw.get("in_sample_end")
        try:
            dt.date.fromisoformat(str(end))
        except ValueError:
            raise SweepInputError(f"{field}.in_sample_end", f"is not a date YYYY-MM-DD: {end!r}") from None
        if not isinstance(end, str) or len(end) != 10:
            raise SweepInputError(f"{field}.in_sample_end", f"is not a date YYYY-MM-DD: {end!r}")
        return Validation("holdout", in_sample_end=end)
    train = _pos_int(raw.get("train_days"), f"{field}.train_days")
    test = _pos_int(raw.get("test_days"), f"{field}.test_days")
    step = test if raw.get("step_days") in (None, 0) else _pos_int(raw.get("step_days"), f"{field}.step_days")
    if step < test:
        raise SweepInputError(f"{field}.step_days", f"must be ≥ test_days ({test}) so test windows do not overlap")
    anchored = raw.get("anchored", False)
    if not isinstance(anchored, bool):
        raise SweepInputError(f"{field}.anchored", "must be true or false")
    return Validation("walk_forward", train_days=train, test_days=test, step_days=step, anchored=anchored)


def make_folds(validation: Validation, calendar: Sequence[str], field: str = "validation") -> list[Fold]:
    """The folds over ``calendar`` (the period's trading days, ascending ``YYYY-MM-DD``); [] for
    kind none. SweepInputError when the period cannot hold one fold."""
    days = list(calendar)
    if validation.kind == "none":
        return []
    if validation.kind == "holdout":
        end = validation.in_sample_end or ""
        n_in = sum(1 for d in days if d <= end)
        if n_in == 0 or n_in == len(days):
            raise SweepInputError(f"{field}.in_sample_end",
                                  f"must leave trading days on both sides within {days[0] if days else '?'} … "
                                  f"{days[-1] if days else '?'}")
        return [Fold(0, days[0], days[n_in - 1], days[n_in], days[-1], n_in, len(days) - n_in)]
    train, test, step = validation.train_days, validation.test_days, validation.step_days
    folds: list[Fold] = []
    k = 0
    while True:
        t0 = train + k * step
        if t0 + test > len(days):
            break
        s0 = 0 if validation.anchored else t0 - train
        folds.append(Fold(k, days[s0], days[t0 - 1], days[t0], days[t0 + test - 1], t0 - s0, test))
        k += 1
        if k > MAX_FOLDS:
            raise SweepInputError(f"{field}.step_days", f"gives more than {MAX_FOLDS} folds")
    if not folds:
        raise SweepInputError(f"{field}.train_days",
                              f"train_days + test_days = {train + test} trading days, the period has {len(days)}")
    return folds


@dataclass(frozen=True)
class Segment:
    """One out-of-sample run: its dates and NAV, from ``initial`` (the NAV before the first day)."""

    dates: Sequence[str]
    nav: Sequence[float]
    initial: float


@dataclass(frozen=True)
class Stitched:
    dates: list[str]
    returns: list[float]  # the chained daily returns, r_t = NAV_t / NAV_{t−1} − 1 within a segment
    equity: list[float]  # equity_t = equity_{t−1} · NAV_t / NAV_{t−1}, equity_0 = initial


def stitch(segments: Sequence[Segment], initial: float) -> Stitched:
    """One equity curve from the out-of-sample segments in order: each segment contributes its
    own daily growth factors (its first day against its own initial capital), so the curve is
    what one account compounding the test windows' returns would show."""
    dates: list[str] = []
    returns: list[float] = []
    equity: list[float] = []
    level = float(initial)
    for k, seg in enumerate(segments):
        if len(seg.dates) != len(seg.nav):
            raise ValueError(f"segment {k}: {len(seg.dates)} dates, {len(seg.nav)} values")
        if dates and seg.dates and seg.dates[0] <= dates[-1]:
            raise ValueError(f"segment {k} starts on {seg.dates[0]}, not after {dates[-1]}")
        prev = float(seg.initial)
        for d, v in zip(seg.dates, seg.nav, strict=True):
            growth = float(v) / prev
            level = level * growth
            dates.append(d)
            returns.append(growth - 1.0)
            equity.append(level)
            prev = float(v)
    return Stitched(dates, returns, equity)
