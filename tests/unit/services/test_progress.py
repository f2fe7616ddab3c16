"""services.progress.ProgressGate: the one progress rule of the engine's stream and task_svc's writes."""

from __future__ import annotations

from services.progress import ProgressGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_then_one_per_interval_then_the_final_once() -> None:
    clock = Clock()
    gate = ProgressGate(0.5, clock)
    assert gate.admit(0.1)  # the first update passes
    clock.now += 0.2
    assert not gate.admit(0.2)
    clock.now += 0.3  # 0.5 s after the last admitted one
    assert gate.admit(0.3)
    clock.now += 0.1
    assert not gate.admit(0.4)
    assert not gate.done
    assert gate.admit(1.0)  # the final one is never held back
    assert gate.done
    clock.now += 10
    assert not gate.admit(1.0) and not gate.admit(0.5)  # nothing after the final


def test_admitted_count_follows_the_interval() -> None:
    clock = Clock()
    gate = ProgressGate(0.25, clock)
    admitted = 0
    for step in range(100):  # 100 updates over 1 s
        clock.now = 100.0 + step * 0.01
        admitted += gate.admit(step / 100)
    assert admitted == 4  # t = 0, 0.25, 0.5, 0.75
