"""SlotPool: bounded running + bounded FIFO waiting, cancellable waits, close() for shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from engine_svc.service.slots import SlotPool, SlotsBusy, SlotsClosed


def test_admits_slots_plus_queue_then_refuses_with_counts() -> None:
    pool = SlotPool(slots=2, queue=1)
    tickets = [pool.reserve() for _ in range(3)]
    assert [t.acquire(timeout=0) for t in tickets[:2]] == [True, True]
    with pytest.raises(SlotsBusy) as info:
        pool.reserve()
    assert str(info.value) == "engine busy: 2 running, 1 waiting; retry later or use another replica"
    assert (pool.stats().running, pool.stats().waiting) == (2, 1)
    tickets[0].release()
    assert tickets[2].acquire(timeout=1)
    assert (pool.stats().running, pool.stats().waiting) == (2, 0)
    pool.reserve().release()  # a free queue place again


def test_reserve_without_wait_takes_only_a_free_slot_never_the_queue() -> None:
    """A sweep's batch (RunTrials) is admitted only where it runs at once: queued, it would wait
    for this engine's running work while another engine's slot idles."""
    pool = SlotPool(slots=2, queue=4)
    first = pool.reserve(wait=False)
    assert first.acquire(timeout=0)
    second = pool.reserve(wait=False)  # the second slot is free
    with pytest.raises(SlotsBusy) as info:
        pool.reserve(wait=False)  # both slots taken (one still reserved): the queue has room, but no
    assert (info.value.running, info.value.waiting) == (1, 1)
    waiting = pool.reserve()  # a single run may still queue
    assert second.acquire(timeout=0)
    assert (pool.stats().running, pool.stats().waiting) == (2, 1)
    first.release()
    with pytest.raises(SlotsBusy):
        pool.reserve(wait=False)  # the freed slot belongs to the run waiting for it
    assert waiting.acquire(timeout=1)
    second.release()
    pool.reserve(wait=False).release()
    waiting.release()
    assert (pool.stats().running, pool.stats().waiting) == (0, 0)


def test_waiter_gets_the_slot_when_it_frees() -> None:
    pool = SlotPool(slots=1, queue=1)
    first, second = pool.reserve(), pool.reserve()
    assert first.acquire()
    got: list[float] = []
    t = threading.Thread(target=lambda: got.append(time.monotonic()) if second.acquire() else None)
    t.start()
    time.sleep(0.2)
    assert not got
    released = time.monotonic()
    first.release()
    t.join(2)
    assert got and got[0] - released < 0.2
    second.release()
    assert pool.stats().running == 0


def test_fifo_order_of_waiters() -> None:
    pool = SlotPool(slots=1, queue=3)
    holder = pool.reserve()
    assert holder.acquire()
    waiters = [pool.reserve() for _ in range(3)]
    order: list[int] = []
    lock = threading.Lock()

    def wait(i: int) -> None:
        assert waiters[i].acquire()
        with lock:
            order.append(i)
        time.sleep(0.05)
        waiters[i].release()

    # Start the threads in reverse: FIFO is by reservation, not by who started waiting first.
    threads = [threading.Thread(target=wait, args=(i,)) for i in (2, 1, 0)]
    for t in threads:
        t.start()
    time.sleep(0.15)
    holder.release()
    for t in threads:
        t.join(3)
    assert order == [0, 1, 2]


def test_cancelled_waiter_leaves_the_queue() -> None:
    pool = SlotPool(slots=1, queue=1)
    holder, waiter = pool.reserve(), pool.reserve()
    assert holder.acquire()
    cancel = threading.Event()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(waiter.acquire(cancel)))
    t.start()
    time.sleep(0.1)
    with pytest.raises(SlotsBusy):
        pool.reserve()
    cancel.set()
    t.join(1)
    assert result == [False] and waiter.state == "released"
    assert pool.stats().waiting == 0
    pool.reserve()  # its place is free


def test_timeout_and_idempotent_release() -> None:
    pool = SlotPool(slots=1, queue=1)
    holder, waiter = pool.reserve(), pool.reserve()
    assert holder.acquire()
    assert not waiter.acquire(timeout=0.1)
    holder.release()
    holder.release()
    assert pool.stats().running == 0 and pool.stats().waiting == 0


def test_close_refuses_new_and_wakes_waiters_but_keeps_running() -> None:
    pool = SlotPool(slots=1, queue=1)
    holder, waiter = pool.reserve(), pool.reserve()
    assert holder.acquire()
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(waiter.acquire()))
    t.start()
    time.sleep(0.05)
    pool.close()
    t.join(1)
    assert result == [False]
    with pytest.raises(SlotsClosed):
        pool.reserve()
    assert pool.stats().running == 1  # a running backtest is not interrupted by close()
    holder.release()


def test_many_threads_never_exceed_the_slots() -> None:
    pool = SlotPool(slots=3, queue=20)
    running = 0
    peak = 0
    lock = threading.Lock()
    refused = 0

    def work() -> None:
        nonlocal running, peak, refused
        try:
            ticket = pool.reserve()
        except SlotsBusy:
            with lock:
                refused += 1
            return
        with ticket:
            assert ticket.acquire()
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.01)
            with lock:
                running -= 1

    threads = [threading.Thread(target=work) for _ in range(23)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert peak <= 3 and refused == 0
    assert pool.stats().running == 0 and pool.stats().waiting == 0


def test_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        SlotPool(0, 1)
    with pytest.raises(ValueError):
        SlotPool(1, -1)
