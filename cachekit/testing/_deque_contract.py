"""``cachekit.Deque`` on the store under test: the deque API against ``collections.deque``, in one
process and across processes."""

from __future__ import annotations

import collections
import multiprocessing
import operator
import pickle
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import hypothesis
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import cachekit
from cachekit import Deque

from ._collection_workers import deque_append_and_pop
from ._support import _WAIT, CacheFactory, FakeClock, _Harness

_INF = float("inf")


class _DequeFactory(Protocol):
    """The ``make_deque`` fixture: a deque on a new cache of the store under test, closed after the test."""

    def __call__(self, iterable: Iterable[Any] = (), maxlen: Any = None, **settings: Any) -> Deque: ...


def _keys_of(deque: Deque) -> list[Any]:
    """The deque's queue keys, front to back."""
    return list(deque.cache.iterkeys())


def _count_scanned(deque: Deque, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the store count the entries its scans yield; returns the running total (one item)."""
    scanned = [0]
    scan = deque.cache.store.scan

    def counting(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for entry in scan(*args, **kwargs):
            scanned[0] += 1
            yield entry

    monkeypatch.setattr(deque.cache.store, "scan", counting)
    return scanned


class DequeContract(_Harness):
    """:class:`cachekit.Deque` on the store under test, compared with ``collections.deque``."""

    @pytest.fixture
    def make_deque(self, make_cache: CacheFactory) -> _DequeFactory:
        """Open deques on the store under test, each on a cache of its own (``eviction_policy="none"``)."""
        made = [0]

        def make(iterable: Iterable[Any] = (), maxlen: Any = None, **settings: Any) -> Deque:
            made[0] += 1
            cache = make_cache(f"deque{made[0]}", eviction_policy="none", **settings)
            return Deque.fromcache(cache, iterable, maxlen)

        return make

    # -- construction and values ---------------------------------------------------------------
    def test_deque_fromcache_wraps_the_cache_itself(self, make_deque: _DequeFactory) -> None:
        """``fromcache`` keeps the given cache object and appends the iterable."""
        deque = make_deque([5, 6, 7, 8])
        again = Deque.fromcache(deque.cache)
        assert again.cache is deque.cache
        assert again.directory == deque.directory
        assert len(again) == 4
        assert 7 in again
        assert 9 not in again
        assert again.popleft() == 5

    def test_deque_items_use_queue_keys(self, make_deque: _DequeFactory) -> None:
        """Items are the cache's queue entries, python-diskcache's numbering, front first."""
        deque = make_deque("ab")
        deque.appendleft("z")
        assert _keys_of(deque) == [499999999999999, 500000000000000, 500000000000001]
        assert deque.cache.peek() == (499999999999999, "z")

    def test_deque_values_of_any_kind(self, make_deque: _DequeFactory) -> None:
        """Values go through the cache's codec: bytes, text, numbers, None, containers, large payloads."""
        values: list[Any] = [b"raw", "text", 1, 2.5, None, {"a": [1, 2]}, (1, "x"), b"x" * 100_000]
        deque = make_deque(values)
        assert list(deque) == values
        assert deque[-1] == b"x" * 100_000
        deque.reverse()
        assert list(deque) == values[::-1]

    # -- the ends ------------------------------------------------------------------------------
    def test_deque_append_pop_and_peek_at_both_ends(self, make_deque: _DequeFactory) -> None:
        """append/appendleft, pop/popleft and peek/peekleft act at the ends as collections.deque does."""
        deque = make_deque()
        deque.append("b")
        deque.appendleft("a")
        deque.append("c")
        assert (deque.peekleft(), deque.peek()) == ("a", "c")
        assert (deque.popleft(), deque.pop(), len(deque)) == ("a", "c", 1)
        deque.extend("de")
        deque.extendleft("yz")
        assert list(deque) == ["z", "y", "b", "d", "e"]
        deque += ["f"]
        assert list(deque) == ["z", "y", "b", "d", "e", "f"]

    def test_deque_extending_with_itself_doubles_it(self, make_deque: _DequeFactory) -> None:
        """``d.extend(d)`` appends a copy of the items once, as collections.deque does, instead of looping."""
        deque = make_deque([1, 2])
        deque.extend(deque)
        deque.extendleft(deque)
        assert list(deque) == [2, 1, 2, 1, 1, 2, 1, 2]

    @pytest.mark.parametrize(
        ("method", "message"),
        [
            ("pop", "pop from an empty deque"),
            ("popleft", "pop from an empty deque"),
            ("peek", "peek from an empty deque"),
            ("peekleft", "peek from an empty deque"),
        ],
    )
    def test_deque_taking_from_an_empty_deque(self, make_deque: _DequeFactory, method: str, message: str) -> None:
        """An empty deque raises IndexError with collections.deque's message."""
        with pytest.raises(IndexError, match=message):
            getattr(make_deque(), method)()

    # -- maxlen --------------------------------------------------------------------------------
    def test_deque_unbounded_maxlen_is_infinity(self, make_deque: _DequeFactory) -> None:
        """Without maxlen, maxlen reads as float('inf'), as in python-diskcache."""
        assert make_deque().maxlen == _INF

    def test_deque_appends_at_maxlen_discard_from_the_other_end(self, make_deque: _DequeFactory) -> None:
        """With maxlen reached, append drops the front item and appendleft the back one."""
        deque = make_deque(range(5), maxlen=3)
        assert (list(deque), deque.maxlen) == ([2, 3, 4], 3)
        deque.append(5)
        assert list(deque) == [3, 4, 5]
        deque.appendleft(2)
        assert list(deque) == [2, 3, 4]

    def test_deque_maxlen_zero_keeps_nothing(self, make_deque: _DequeFactory) -> None:
        """maxlen=0 accepts appends and keeps nothing, as collections.deque(maxlen=0)."""
        deque = make_deque("abc", maxlen=0)
        deque.appendleft("x")
        assert len(deque) == 0

    def test_deque_maxlen_setter_trims_from_the_front(self, make_deque: _DequeFactory) -> None:
        """Lowering maxlen removes items from the front until the deque fits; None lifts the bound."""
        deque = make_deque()
        deque.extendleft("abcde")
        deque.maxlen = 3
        assert list(deque) == ["c", "b", "a"]
        deque.maxlen = None
        deque.extend("xyz")
        assert (len(deque), deque.maxlen) == (6, _INF)

    def test_deque_insert_into_a_full_deque(self, make_deque: _DequeFactory) -> None:
        """insert into a deque at maxlen raises IndexError and changes nothing."""
        deque = make_deque("ab", maxlen=2)
        with pytest.raises(IndexError, match="deque already at its maximum size"):
            deque.insert(1, "x")
        assert list(deque) == ["a", "b"]

    @pytest.mark.parametrize(
        ("maxlen", "error", "message"),
        [(-1, ValueError, "non-negative"), (2.5, TypeError, "integer or None"), ("3", TypeError, "integer or None")],
    )
    def test_deque_invalid_maxlen(
        self, make_deque: _DequeFactory, maxlen: Any, error: type[Exception], message: str
    ) -> None:
        """maxlen must be a non-negative integer or None, in the constructor and the setter."""
        with pytest.raises(error, match=message):
            make_deque(maxlen=maxlen)
        deque = make_deque("ab")
        with pytest.raises(error, match=message):
            deque.maxlen = maxlen
        assert list(deque) == ["a", "b"]

    # -- indexing ------------------------------------------------------------------------------
    def test_deque_get_set_and_delete_by_position(self, make_deque: _DequeFactory) -> None:
        """d[i], d[i] = x and del d[i] follow collections.deque, negative positions included."""
        deque = make_deque("abcde")
        assert (deque[0], deque[1], deque[-1], deque[-5]) == ("a", "b", "e", "a")
        deque[1] = "B"
        deque[-1] = "E"
        assert list(deque) == ["a", "B", "c", "d", "E"]
        del deque[1]
        del deque[-2]
        assert list(deque) == ["a", "c", "E"]
        del deque[0]
        del deque[-1]
        assert list(deque) == ["c"]

    @pytest.mark.parametrize("index", [5, -6, 100])
    def test_deque_index_out_of_range(self, make_deque: _DequeFactory, index: int) -> None:
        """A position outside the deque raises IndexError for reads, writes and deletes."""
        deque = make_deque("abcde")
        with pytest.raises(IndexError, match="deque index out of range"):
            deque[index]
        with pytest.raises(IndexError, match="deque index out of range"):
            deque[index] = "x"
        with pytest.raises(IndexError, match="deque index out of range"):
            del deque[index]
        assert list(deque) == list("abcde")

    @pytest.mark.parametrize("index", ["1", 1.0, slice(0, 2)])
    def test_deque_indices_must_be_integers(self, make_deque: _DequeFactory, index: Any) -> None:
        """Indices must be integers: slices are refused, as collections.deque refuses them."""
        deque = make_deque("abc")
        with pytest.raises(TypeError, match="deque indices must be integers"):
            deque[index]
        with pytest.raises(TypeError, match="deque indices must be integers"):
            deque.insert(index, "x")

    def test_deque_deleting_in_the_middle_keeps_keys_contiguous(self, make_deque: _DequeFactory) -> None:
        """del, remove and insert move the shorter side, so the keys stay one run without gaps."""
        deque = make_deque(range(10))
        del deque[2]  # nearer the front: the front items move back one key
        del deque[-3]  # nearer the back: the back items move forward one key
        deque.remove(5)
        deque.insert(1, "x")
        deque.insert(-1, "y")
        keys = _keys_of(deque)
        assert keys == list(range(keys[0], keys[0] + len(keys)))
        assert list(deque) == [0, "x", 1, 3, 4, 6, 8, "y", 9]

    def test_deque_indexing_reads_no_more_than_the_ends(
        self, make_deque: _DequeFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without holes, d[i] costs two one-entry seeks (front and back keys) and one lookup."""
        deque = make_deque(range(300))
        scanned = _count_scanned(deque, monkeypatch)
        assert (deque[150], deque[-150], deque[299]) == (150, 150, 299)
        assert scanned[0] == 6

    def test_deque_holes_made_outside_fall_back_to_a_bounded_scan(
        self, make_deque: _DequeFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A key removed from the cache directly leaves a hole; indexing then scans from the nearer end."""
        deque = make_deque(range(300))
        deque.cache.delete(_keys_of(deque)[100])
        model: list[Any] = [number for number in range(300) if number != 100]
        scanned = _count_scanned(deque, monkeypatch)
        assert deque[10] == 10
        assert scanned[0] <= 2 + 11
        assert deque[-10] == 290
        assert scanned[0] <= 2 * (2 + 11)
        assert [deque[position] for position in range(len(model))] == model
        assert [deque[-position - 1] for position in range(len(model))] == model[::-1]
        deque[150] = "x"
        model[150] = "x"
        del deque[120]
        del model[120]
        deque.insert(50, "y")
        model.insert(50, "y")
        deque.rotate(7)
        model = model[-7:] + model[:-7]
        assert list(deque) == model
        deque.reverse()
        assert list(deque) == model[::-1]

    def test_deque_expired_items_met_by_indexing_are_removed(self, make_cache: CacheFactory, clock: FakeClock) -> None:
        """An item given an expiry through the cache is removed once expired, as pull removes it."""
        cache = make_cache(eviction_policy="none", clock=clock)
        deque = Deque.fromcache(cache, range(6))
        cache.set(_keys_of(deque)[2], "soon gone", expire=10)
        assert deque[2] == "soon gone"
        clock.advance(11)
        assert deque[2] == 3
        assert (list(deque), len(deque)) == ([0, 1, 3, 4, 5], 5)
        cache.set(_keys_of(deque)[1], "gone too", expire=10)
        clock.advance(11)
        del deque[2]  # moves the expired item's place along: it disappears with the deleted one
        assert list(deque) == [0, 4, 5]

    def test_deque_expired_items_vanish_from_every_operation_that_meets_them(
        self, make_cache: CacheFactory, clock: FakeClock
    ) -> None:
        """Iteration skips an expired item; insert, reverse and rotate drop it instead of moving it."""
        cache = make_cache(eviction_policy="none", clock=clock)

        def deque_with_expired(items: str, *positions: int) -> Deque:
            cache.clear()
            deque = Deque.fromcache(cache, items)
            keys = _keys_of(deque)
            for position in positions:
                cache.set(keys[position], "expired", expire=1)
            clock.advance(2)
            return deque

        deque = deque_with_expired("abcdef", 1)
        assert (list(deque), list(reversed(deque))) == (list("acdef"), list("fedca"))
        deque = deque_with_expired("abcdef", 0)
        deque.insert(2, "x")  # the front items move towards the front: the expired one is dropped
        assert list(deque) == list("bxcdef")
        deque = deque_with_expired("abcdef", 5)
        deque.insert(4, "x")  # the back items move towards the back
        assert list(deque) == list("abcdxe")
        deque = deque_with_expired("abcde", 1, 4)
        deque.reverse()
        assert list(deque) == list("dca")
        deque = deque_with_expired("abc", 0, 1, 2)
        deque.rotate(1)
        assert (list(deque), len(deque)) == ([], 0)

    # -- operations ----------------------------------------------------------------------------
    def test_deque_rotate(self, make_deque: _DequeFactory) -> None:
        """rotate(k) turns right, rotate(-k) left, any k (modulo the length), as collections.deque."""
        deque = make_deque(range(5))
        model = collections.deque(range(5))
        for steps in (2, -1, 0, 5, 13, -12, 1):
            deque.rotate(steps)
            model.rotate(steps)
            assert list(deque) == list(model)
        deque.rotate()
        model.rotate()
        assert list(deque) == list(model)
        empty = make_deque()
        empty.rotate(3)
        assert list(empty) == []

    def test_deque_rotate_needs_an_integer(self, make_deque: _DequeFactory) -> None:
        """rotate refuses a non-integer number of steps, with python-diskcache's message."""
        steps: Any = 1.5
        with pytest.raises(TypeError, match="integer argument expected, got float"):
            make_deque("ab").rotate(steps)

    def test_deque_reverse(self, make_deque: _DequeFactory) -> None:
        """reverse turns the items around in place, for odd and even lengths."""
        for items in ("", "a", "ab", "abc", "abcdef"):
            deque = make_deque(items)
            deque.reverse()
            assert "".join(deque) == items[::-1]

    def test_deque_remove_count_and_index(self, make_deque: _DequeFactory) -> None:
        """remove drops the first equal item; count and index find them, as collections.deque."""
        deque = make_deque("abcabc")
        assert (deque.count("a"), deque.count("z")) == (2, 0)
        assert (deque.index("b"), deque.index("b", 2), deque.index("c", -2), deque.index("a", 1, 4)) == (1, 4, 5, 3)
        assert deque.index("c", -4, -3) == 2
        deque.remove("b")
        assert list(deque) == list("acabc")
        with pytest.raises(ValueError, match=r"deque.remove\(value\): value not in deque"):
            deque.remove("z")
        with pytest.raises(ValueError, match="'b' is not in deque"):
            deque.index("b", 0, 3)
        with pytest.raises(ValueError, match="'z' is not in deque"):
            deque.index("z")

    def test_deque_remove_beyond_one_batch(self, make_deque: _DequeFactory) -> None:
        """remove finds an item past the first batch of keys it reads."""
        deque = make_deque(range(250))
        deque.remove(230)
        deque.remove(120)
        assert list(deque) == [number for number in range(250) if number not in (120, 230)]

    def test_deque_insert_at_every_position(self, make_deque: _DequeFactory) -> None:
        """insert(i, x) places x before position i, clamping as list.insert does."""
        for index in range(-8, 9):
            deque = make_deque("abcde")
            model = list("abcde")
            deque.insert(index, "x")
            model.insert(index, "x")
            assert list(deque) == model, index

    def test_deque_clear(self, make_deque: _DequeFactory) -> None:
        """clear removes every item; the deque works on afterwards."""
        deque = make_deque(range(250))
        deque.clear()
        assert (len(deque), list(deque)) == (0, [])
        deque.append("again")
        assert list(deque) == ["again"]

    def test_deque_iteration_in_both_directions_beyond_one_batch(self, make_deque: _DequeFactory) -> None:
        """Iteration and reversed() read every item in order, across batches."""
        deque = make_deque(range(250))
        assert list(deque) == list(range(250))
        assert list(reversed(deque)) == list(range(249, -1, -1))

    def test_deque_a_value_larger_than_size_limit_is_refused(self, make_deque: _DequeFactory) -> None:
        """A value the cache refuses raises ValueError naming size_limit, and changes nothing."""
        deque = make_deque("ab", size_limit=1000)
        actions: list[Callable[[], None]] = [
            lambda: deque.append(b"x" * 2000),
            lambda: deque.appendleft(b"x" * 2000),
            lambda: deque.insert(1, b"x" * 2000),
            lambda: deque.__setitem__(0, b"x" * 2000),
        ]
        for action in actions:
            with pytest.raises(ValueError, match=r"size_limit \(1000 bytes\)"):
                action()
        assert list(deque) == ["a", "b"]

    # -- comparisons ---------------------------------------------------------------------------
    def test_deque_equality_with_sequences(self, make_deque: _DequeFactory) -> None:
        """A deque equals any sequence with equal items in order (python-diskcache's rule)."""
        deque = make_deque([1, 2, 3])
        assert deque == [1, 2, 3]
        assert deque == (1, 2, 3)
        assert deque == make_deque([1, 2, 3])
        assert deque != [1, 2]
        assert deque != [1, 2, 4]
        assert not deque == [3, 2, 1]  # noqa: SIM201 - testing __eq__ itself
        assert deque != {1, 2, 3}
        assert deque != 123
        assert deque.__eq__(123) is NotImplemented

    def test_deque_ordering_is_lexicographic(self, make_deque: _DequeFactory) -> None:
        """<, <=, > and >= compare item by item, then by length, as lists do."""
        deque = make_deque([1, 2, 3])
        assert deque < [1, 2, 4]
        assert deque < [1, 2, 3, 0]
        assert deque <= [1, 2, 3]
        assert deque > [1, 2]
        assert deque >= (1, 2, 3)
        assert not deque > [1, 3]
        for compare in (operator.lt, operator.le, operator.gt, operator.ge):
            with pytest.raises(TypeError, match="not supported between instances of 'Deque' and 'int'"):
                compare(deque, 5)

    def test_deque_is_unhashable(self, make_deque: _DequeFactory) -> None:
        """A deque is mutable, so it cannot be hashed."""
        with pytest.raises(TypeError, match="unhashable"):
            hash(make_deque())

    # -- sharing -------------------------------------------------------------------------------
    def test_deque_copy_shares_the_directory_and_maxlen(self, make_deque: _DequeFactory) -> None:
        """copy() is another Deque object on the same directory, as in python-diskcache."""
        deque = make_deque("ab", maxlen=5)
        twin = deque.copy()
        try:
            assert twin is not deque
            assert twin.cache is not deque.cache
            assert (twin.directory, twin.maxlen, twin.cache.store_name) == (
                deque.directory,
                5,
                deque.cache.store_name,
            )
            twin.append("c")
            assert list(deque) == ["a", "b", "c"]
        finally:
            twin.cache.close()

    def test_deque_pickling_reopens_the_same_directory(self, make_deque: _DequeFactory) -> None:
        """A pickled deque reopens its directory (same store) with the same maxlen."""
        deque = make_deque("abc", maxlen=4)
        restored = pickle.loads(pickle.dumps(deque))
        try:
            assert (restored.directory, restored.maxlen, restored.cache.store_name) == (
                deque.directory,
                4,
                deque.cache.store_name,
            )
            assert list(restored) == ["a", "b", "c"]
            restored.append("d")
            restored.append("e")
            assert list(deque) == ["b", "c", "d", "e"]
        finally:
            restored.cache.close()

    def test_deque_transact_makes_several_operations_atomic(self, make_deque: _DequeFactory) -> None:
        """Inside transact(), other threads wait; a failure rolls every operation back."""
        deque = make_deque(range(5))
        with deque.transact():
            value = deque.pop()
            deque.appendleft(value)
        assert list(deque) == [4, 0, 1, 2, 3]

        def fail_halfway() -> None:
            with deque.transact():
                deque.append("half")
                del deque[0]
                raise RuntimeError("undo")

        with pytest.raises(RuntimeError, match="undo"):
            fail_halfway()
        assert list(deque) == [4, 0, 1, 2, 3]

    def test_deque_threads_lose_and_duplicate_nothing(self, make_deque: _DequeFactory) -> None:
        """Threads appending and popping at both ends and in the middle account for every item."""
        deque = make_deque()
        taken: list[Any] = []
        lock = threading.Lock()

        def work(worker: int) -> None:
            for number in range(40):
                if number % 2:
                    deque.appendleft((worker, number))
                else:
                    deque.append((worker, number))
                try:
                    if number % 3 == 0:
                        item = deque.popleft()
                    else:
                        with deque.transact():
                            item = deque[len(deque) // 2]
                            del deque[len(deque) // 2]
                except IndexError:
                    continue
                with lock:
                    taken.append(item)

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(_WAIT)
        assert not any(thread.is_alive() for thread in threads)
        everything = taken + list(deque)
        assert sorted(everything) == sorted((worker, number) for worker in range(4) for number in range(40))

    def test_deque_four_processes_lose_and_duplicate_nothing(self, make_cache: CacheFactory) -> None:
        """Four processes adding at both ends and the middle, and taking from both ends and the
        middle, account for every item exactly once."""
        count = 60
        cache = make_cache(eviction_policy="none")
        deque = Deque.fromcache(cache)
        with multiprocessing.get_context("spawn").Pool(4) as pool:
            pending = [pool.apply_async(deque_append_and_pop, (cache.directory, worker, count)) for worker in range(4)]
            results = [result.get(timeout=2 * _WAIT) for result in pending]
        assert [result["error"] for result in results] == [None] * 4
        added = sorted(tuple(item) for result in results for item in result["added"])
        taken = [tuple(item) for result in results for item in result["taken"]]
        remaining = list(deque)
        assert added == sorted((worker, number) for worker in range(4) for number in range(count))
        assert sorted(taken + remaining) == added
        keys = _keys_of(deque)
        if keys:
            assert keys == list(range(keys[0], keys[0] + len(keys)))

    # -- the model: collections.deque ----------------------------------------------------------
    def test_deque_behaves_as_collections_deque(self, tmp_path: Path) -> None:
        """Random operations on a Deque and a collections.deque (holes made through the cache
        included) return the same results and leave the same items, compared after every step."""
        store = self.store

        def machine() -> _DequeMachine:
            return _DequeMachine(store, tmp_path)

        # hypothesis takes any callable that returns a machine; its annotation names only classes.
        factory = cast("type[RuleBasedStateMachine]", machine)
        run_state_machine_as_test(
            factory, settings=hypothesis.settings(max_examples=100, stateful_step_count=40, deadline=None)
        )


_VALUES = st.integers(-3, 3) | st.text(alphabet="ab", max_size=2)
_POSITIONS = st.integers(-12, 12)


class _DequeMachine(RuleBasedStateMachine):
    """Random operations on a Deque and a collections.deque, compared after every step."""

    def __init__(self, store: str, root: Path) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="deque-", dir=root)
        self.cache = cachekit.Cache(self.directory, store=store, eviction_policy="none")
        self.deque = Deque.fromcache(self.cache)
        self.model: collections.deque[Any] = collections.deque()

    def teardown(self) -> None:
        self.cache.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def both(self, action: Callable[[Any], Any]) -> None:
        """Apply ``action`` to both; they must return the same or raise the same exception type."""
        outcomes: list[tuple[str, Any]] = []
        for target in (self.deque, self.model):
            try:
                outcomes.append(("ok", action(target)))
            except (IndexError, ValueError) as error:
                outcomes.append(("error", type(error)))
        assert outcomes[0] == outcomes[1]

    @rule(value=_VALUES)
    def append(self, value: Any) -> None:
        self.both(lambda target: target.append(value))

    @rule(value=_VALUES)
    def appendleft(self, value: Any) -> None:
        self.both(lambda target: target.appendleft(value))

    @rule(values=st.lists(_VALUES, max_size=4))
    def extend(self, values: list[Any]) -> None:
        self.both(lambda target: target.extend(values))

    @rule(values=st.lists(_VALUES, max_size=4))
    def extendleft(self, values: list[Any]) -> None:
        self.both(lambda target: target.extendleft(values))

    @rule()
    def pop(self) -> None:
        self.both(lambda target: target.pop())

    @rule()
    def popleft(self) -> None:
        self.both(lambda target: target.popleft())

    @rule()
    def peek(self) -> None:
        self.both(lambda target: target.peek() if isinstance(target, Deque) else target[-1])

    @rule()
    def peekleft(self) -> None:
        self.both(lambda target: target.peekleft() if isinstance(target, Deque) else target[0])

    @rule(index=_POSITIONS)
    def get(self, index: int) -> None:
        self.both(lambda target: target[index])

    @rule(index=_POSITIONS, value=_VALUES)
    def set(self, index: int, value: Any) -> None:
        def assign(target: Any) -> None:
            target[index] = value

        self.both(assign)

    @rule(index=_POSITIONS)
    def delete(self, index: int) -> None:
        def remove(target: Any) -> None:
            del target[index]

        self.both(remove)

    @rule(index=_POSITIONS, value=_VALUES)
    def insert(self, index: int, value: Any) -> None:
        self.both(lambda target: target.insert(index, value))

    @rule(value=_VALUES)
    def remove(self, value: Any) -> None:
        self.both(lambda target: target.remove(value))

    @rule(value=_VALUES)
    def count_and_index(self, value: Any) -> None:
        self.both(lambda target: target.count(value))
        self.both(lambda target: target.index(value))

    @rule(steps=st.integers(-7, 7))
    def rotate(self, steps: int) -> None:
        self.both(lambda target: target.rotate(steps))

    @rule()
    def reverse(self) -> None:
        self.both(lambda target: target.reverse())

    @rule(maxlen=st.none() | st.integers(0, 6))
    def set_maxlen(self, maxlen: int | None) -> None:
        self.deque.maxlen = maxlen
        self.model = collections.deque(self.model, maxlen=maxlen)  # keeps the last items, as the setter does

    @precondition(lambda self: len(self.model) > 2)
    @rule(data=st.data())
    def hole(self, data: st.DataObject) -> None:
        """Remove an item behind the deque's back, through the cache: a hole the deque must cope with."""
        position = data.draw(st.integers(1, len(self.model) - 2))
        self.cache.delete(_keys_of(self.deque)[position])
        del self.model[position]

    @rule()
    def clear(self) -> None:
        self.both(lambda target: target.clear())

    @invariant()
    def same_items(self) -> None:
        assert len(self.deque) == len(self.model)
        assert list(self.deque) == list(self.model)
        assert self.deque == list(self.model)
        assert self.deque.maxlen == (_INF if self.model.maxlen is None else self.model.maxlen)
