"""The work queue: de-duplication, one worker per key, backoff, rate limit, terminal errors."""

from __future__ import annotations

import threading
import time

import pytest

from agent.daemon.queue import Backoff, Outcome, QueueSettings, TokenBucket, WorkerPool, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_adds_collapse_into_one_key() -> None:
    q = WorkQueue()
    for _ in range(5):
        q.add("web")
    q.add("db")
    assert len(q) == 2
    assert q.get(timeout=0) == "web"
    assert q.get(timeout=0) == "db"
    assert q.get(timeout=0) is None


def test_key_added_while_processing_is_requeued_only_after_done() -> None:
    q = WorkQueue()
    q.add("web")
    assert q.get(timeout=0) == "web"
    q.add("web")
    q.add("web")
    # Not handed to a second worker while the first still holds it.
    assert q.get(timeout=0) is None
    q.done("web")
    assert q.get(timeout=0) == "web"
    q.done("web")
    assert q.get(timeout=0) is None


def test_backoff_doubles_from_base_to_cap_and_forget_resets() -> None:
    b = Backoff(0.005, 0.04)
    assert [b.next_delay("k") for _ in range(6)] == [0.005, 0.01, 0.02, 0.04, 0.04, 0.04]
    assert b.next_delay("other") == 0.005
    b.forget("k")
    assert b.next_delay("k") == 0.005


def test_backoff_survives_huge_failure_counts() -> None:
    b = Backoff(1.0, 300.0)
    for _ in range(2000):
        delay = b.next_delay("k")
    assert delay == 300.0


def test_token_bucket_allows_burst_then_spaces_by_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 10
    assert bucket.reserve() == 0.0


def test_rate_limited_add_waits_for_the_larger_of_backoff_and_bucket() -> None:
    q = WorkQueue(QueueSettings(backoff_base=0.001, backoff_cap=1.0, rate_limit=1.0, rate_burst=1))
    assert q.add_rate_limited("a") == pytest.approx(0.001)
    # The bucket is now empty: the next retry of any key waits about a second.
    assert q.add_rate_limited("b") == pytest.approx(1.0, abs=0.01)


def test_delayed_key_becomes_available_after_its_delay() -> None:
    q = WorkQueue()
    q.add_after("later", 0.05)
    assert q.get(timeout=0) is None
    assert q.pending_delayed() == 1
    assert q.get(timeout=2) == "later"


def test_shutdown_wakes_blocked_getters() -> None:
    q = WorkQueue()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.05)
    q.shutdown()
    t.join(2)
    assert got == [None]
    q.add("x")
    assert len(q) == 0


def test_pool_never_runs_one_key_on_two_workers() -> None:
    q = WorkQueue()
    active: dict[str, int] = {}
    overlaps: list[str] = []
    calls: list[str] = []
    lock = threading.Lock()

    def handler(key: object) -> Outcome:
        with lock:
            active[key] = active.get(key, 0) + 1
            if active[key] > 1:
                overlaps.append(key)
            calls.append(key)
        time.sleep(0.01)
        with lock:
            active[key] -= 1
        return Outcome.SUCCESS

    pool = WorkerPool(q, handler, workers=4)
    pool.start()
    for _ in range(50):
        for key in ("a", "b", "c"):
            q.add(key)
        time.sleep(0.002)
    deadline = time.monotonic() + 5
    while (len(q) or q.in_flight()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.stop(timeout=5)
    assert overlaps == []
    assert set(calls) == {"a", "b", "c"}
    # De-duplication: far fewer calls than the 150 adds.
    assert len(calls) < 150


def test_pool_retries_transient_failures_and_forgets_terminal_ones() -> None:
    q = WorkQueue(QueueSettings(backoff_base=0.001, backoff_cap=0.01))
    calls: dict[str, int] = {"flaky": 0, "invalid": 0}
    done = threading.Event()

    def handler(key: str) -> Outcome:
        calls[key] += 1
        if key == "invalid":
            return Outcome.TERMINAL
        if calls[key] < 4:
            return Outcome.RETRY
        done.set()
        return Outcome.SUCCESS

    pool = WorkerPool(q, handler, workers=2)
    pool.start()
    q.add("flaky")
    q.add("invalid")
    assert done.wait(5)
    time.sleep(0.1)
    pool.stop(timeout=5)
    assert calls == {"flaky": 4, "invalid": 1}
    assert q.failures("flaky") == 0
    assert q.pending_delayed() == 0


def test_handler_exception_is_reported_and_retried() -> None:
    q = WorkQueue(QueueSettings(backoff_base=0.001, backoff_cap=0.001))
    errors: list[tuple[object, BaseException]] = []
    attempts: list[object] = []
    done = threading.Event()

    def handler(key: object) -> Outcome:
        attempts.append(key)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        done.set()
        return Outcome.SUCCESS

    pool = WorkerPool(q, handler, workers=1, on_error=lambda k, e: errors.append((k, e)))
    pool.start()
    q.add("k")
    assert done.wait(5)
    pool.stop(timeout=5)
    assert attempts == ["k", "k"]
    assert [(k, str(e)) for k, e in errors] == [("k", "boom")]


def test_hooks_see_adds_depth_retries_and_durations() -> None:
    events: list[tuple[str, object]] = []

    class Hooks:
        def added(self, key: object) -> None:
            events.append(("added", key))

        def depth(self, depth: int) -> None:
            events.append(("depth", depth))

        def retried(self, key: object) -> None:
            events.append(("retried", key))

        def started(self, key: object, queued_seconds: float) -> None:
            assert queued_seconds >= 0
            events.append(("started", key))

        def finished(self, key: object, work_seconds: float) -> None:
            assert work_seconds >= 0
            events.append(("finished", key))

    q = WorkQueue(hooks=Hooks())
    q.add("k")
    q.add("k")
    assert q.get(timeout=0) == "k"
    q.add_rate_limited("k")
    q.done("k")
    assert events == [("added", "k"), ("depth", 1), ("depth", 0), ("started", "k"), ("retried", "k"),
                      ("finished", "k")]


def test_unfinished_work_reports_total_and_longest() -> None:
    clock = FakeClock()
    q = WorkQueue(clock=clock)
    q.add("a")
    q.add("b")
    q.get(timeout=0)
    clock.now += 2
    q.get(timeout=0)
    clock.now += 1
    total, longest = q.unfinished_work()
    assert total == pytest.approx(4.0)
    assert longest == pytest.approx(3.0)
