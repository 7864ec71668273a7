"""``transact``, isolation, rollback and lock timeouts."""

from __future__ import annotations

import threading
import time

import pytest

import cachekit

from ._support import _WAIT, CacheFactory, _Harness, _Rollback, _run_in_thread


class TransactionContract(_Harness):
    """``transact()``: atomicity, isolation from other handles, nesting, and the write lock's timeout."""

    def test_writes_in_a_transaction_are_invisible_elsewhere_until_commit(self, make_cache: CacheFactory) -> None:
        """Other threads and other cache objects see none of a transaction's writes until it commits."""
        cache = make_cache()
        other = make_cache()
        cache.set("existing", "old")
        with cache.transact():
            cache.set("new", 1)
            cache.set("existing", "new")
            assert cache.get("new") == 1
            assert _run_in_thread(lambda: other.get("new")) is None
            assert _run_in_thread(lambda: other.get("existing")) == "old"
            assert _run_in_thread(lambda: cache.get("new")) is None
            assert _run_in_thread(lambda: len(other)) == 1
        assert other.get("new") == 1
        assert other.get("existing") == "new"
        assert len(other) == 2

    def test_an_exception_rolls_back_every_write(self, cache: cachekit.Cache) -> None:
        """An exception inside ``transact()`` propagates and undoes every write made in it."""
        cache.set("kept", "value")
        cache.set("counter", 1)

        def fail() -> None:
            with cache.transact():
                cache.set("new", 1)
                cache.incr("counter", 5)
                cache.delete("kept")
                cache.push("queued")
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert list(cache) == ["kept", "counter"]
        assert cache["kept"] == "value"
        assert cache["counter"] == 1

    def test_transactions_make_read_modify_write_atomic(self, cache: cachekit.Cache) -> None:
        """Reads and writes inside one ``transact()`` see each other and commit together."""
        with cache.transact():
            total = cache.incr("total", 10)
            count = cache.incr("count")
            cache.set("average", total / count)
        assert (cache["total"], cache["count"], cache["average"]) == (10, 1, 10.0)

    def test_nested_transactions_join_the_outer_one(self, make_cache: CacheFactory) -> None:
        """A nested ``transact()`` commits or rolls back with the outer one, not on its own exit."""
        cache = make_cache()
        other = make_cache()
        with cache.transact():
            cache.set("outer", 1)
            with cache.transact():
                cache.set("inner", 2)
            assert _run_in_thread(lambda: other.get("inner")) is None
        assert (other.get("outer"), other.get("inner")) == (1, 2)

        def fail() -> None:
            with cache.transact():
                cache.set("outer-2", 1)
                with cache.transact():
                    cache.set("inner-2", 2)
                raise _Rollback

        with pytest.raises(_Rollback):
            fail()
        assert "outer-2" not in cache
        assert "inner-2" not in cache

    def test_a_blocked_writer_times_out_or_waits_with_retry(self, make_cache: CacheFactory) -> None:
        """While another handle holds the lock, a write raises ``Timeout`` after ``timeout`` or waits with ``retry``."""
        cache = make_cache()
        impatient = make_cache(timeout=0.2)
        waiter: list[bool] = []
        with cache.transact():
            cache.set("held", 1)
            with pytest.raises(cachekit.Timeout):
                _run_in_thread(lambda: impatient.set("x", 1))
            thread = threading.Thread(target=lambda: waiter.append(impatient.set("y", 2, retry=True)), daemon=True)
            thread.start()
            time.sleep(0.5)
            assert thread.is_alive(), "a write with retry=True gave up while the lock was held"
        thread.join(_WAIT)
        assert waiter == [True]
        assert cache["y"] == 2
        assert "x" not in cache
        assert impatient.counters()["timeouts"] >= 2
