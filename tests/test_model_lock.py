"""axllm.scheduler.FairLock: strict arrival order, no barging, timeouts, release from any thread,
double release."""

from __future__ import annotations

import threading
import time

import pytest

from axllm.model_lock import FairLock

DEADLINE = 10.0


def _wait_until(cond, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.0005)


def _queue(lock: FairLock, body) -> threading.Thread:
    """Start a thread running ``body`` and return once it is queued on ``lock``."""
    before = lock.queue_length
    t = threading.Thread(target=body)
    t.start()
    _wait_until(lambda: lock.queue_length == before + 1, "a thread to queue")
    return t


def test_uncontended_and_context_manager():
    lock = FairLock()
    assert not lock.locked and lock.queue_length == 0
    assert lock.acquire()
    assert lock.locked
    assert not lock.acquire(timeout=0)
    lock.release()
    assert not lock.locked
    with lock as held:
        assert held is lock and lock.locked
    assert not lock.locked
    assert lock.acquire(timeout=0)
    lock.release()


def test_waiters_are_served_in_arrival_order():
    lock = FairLock()
    order: list[int] = []
    n = 24

    def body(i: int) -> None:
        with lock:
            order.append(i)
            time.sleep(0.0002)  # hold a moment so later waiters really contend

    lock.acquire()
    threads = [_queue(lock, lambda i=i: body(i)) for i in range(n)]
    assert lock.queue_length == n
    lock.release()
    for t in threads:
        t.join(DEADLINE)
    assert order == list(range(n))
    assert not lock.locked and lock.queue_length == 0


def test_release_hands_the_lock_to_the_oldest_waiter_without_freeing_it():
    lock = FairLock()
    got = threading.Event()
    let_go = threading.Event()

    def waiter() -> None:
        lock.acquire()
        got.set()
        let_go.wait(DEADLINE)
        lock.release()

    lock.acquire()
    t = _queue(lock, waiter)
    lock.release()
    # The lock now belongs to the waiter, whether or not its thread has woken yet: a newcomer
    # cannot take it.
    assert lock.locked
    assert not lock.acquire(timeout=0)
    assert not lock.acquire(timeout=0.01)
    assert got.wait(DEADLINE)
    let_go.set()
    t.join(DEADLINE)
    assert lock.acquire(timeout=0)
    lock.release()


def test_timeout():
    lock = FairLock()
    lock.acquire()
    t0 = time.monotonic()
    assert lock.acquire(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.045
    assert lock.queue_length == 0
    lock.release()
    assert lock.acquire(timeout=0.05) is True
    lock.release()
    with pytest.raises(ValueError, match="timeout"):
        lock.acquire(timeout=-1)


def test_timed_out_waiter_leaves_the_queue_and_never_gets_the_lock():
    lock = FairLock()
    order: list[str] = []
    results: dict[str, bool] = {}

    def take(name: str, timeout=None) -> None:
        ok = lock.acquire(timeout=timeout)
        results[name] = ok
        if ok:
            order.append(name)
            lock.release()

    lock.acquire()
    first = _queue(lock, lambda: take("first"))
    impatient = _queue(lock, lambda: take("impatient", 0.05))
    last = _queue(lock, lambda: take("last"))
    impatient.join(DEADLINE)
    assert results == {"impatient": False}
    assert lock.queue_length == 2
    lock.release()
    first.join(DEADLINE)
    last.join(DEADLINE)
    assert order == ["first", "last"]
    assert not lock.locked


def test_double_release_raises():
    lock = FairLock()
    with pytest.raises(RuntimeError, match="not held"):
        lock.release()
    lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError, match="not held"):
        lock.release()
    with pytest.raises(RuntimeError, match="not held"):
        with lock:
            lock.release()


def test_release_from_another_thread():
    lock = FairLock()
    lock.acquire()
    t = threading.Thread(target=lock.release)
    t.start()
    t.join(DEADLINE)
    assert not lock.locked
    assert lock.acquire(timeout=0)

    got = threading.Event()
    waiter = _queue(lock, lambda: (lock.acquire(), got.set()))
    releaser = threading.Thread(target=lock.release)
    releaser.start()
    releaser.join(DEADLINE)
    assert got.wait(DEADLINE)
    waiter.join(DEADLINE)
    assert lock.locked  # the waiter holds it; its release may come from any thread too
    lock.release()
    assert not lock.locked


@pytest.mark.parametrize("granted", [False, True])
def test_interrupted_waiter_leaves_the_queue_and_passes_the_lock_on(monkeypatch, granted):
    lock = FairLock()
    lock.acquire()
    real_event = threading.Event

    class Interrupted(real_event):
        def wait(self, timeout=None):
            if granted:
                lock.release()  # the lock reaches this waiter just as the interrupt arrives
                assert self.is_set()
            raise KeyboardInterrupt

    monkeypatch.setattr(threading, "Event", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock.acquire()
    monkeypatch.setattr(threading, "Event", real_event)
    assert lock.queue_length == 0
    assert lock.locked is not granted
    if not granted:
        lock.release()
    assert lock.acquire(timeout=0)
    lock.release()
