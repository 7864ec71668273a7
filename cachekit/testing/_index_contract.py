"""``cachekit.Index`` on the store under test: the ordered-mapping API against ``dict``."""

from __future__ import annotations

import collections
import pickle
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import hypothesis
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import cachekit
from cachekit import ENOVAL, Index

from ._support import _WAIT, CacheFactory, FakeClock, _Harness


class _IndexFactory(Protocol):
    """The ``make_index`` fixture: an index on a new cache of the store under test, closed after the test."""

    def __call__(self, *args: Any, **kwargs: Any) -> Index: ...


class IndexContract(_Harness):
    """:class:`cachekit.Index` on the store under test, compared with ``dict``."""

    @pytest.fixture
    def make_index(self, make_cache: CacheFactory) -> _IndexFactory:
        """Open indexes on the store under test, each on a cache of its own (``eviction_policy="none"``);
        the arguments update the index as ``dict.update`` does."""
        made = [0]

        def make(*args: Any, **kwargs: Any) -> Index:
            made[0] += 1
            return Index.fromcache(make_cache(f"index{made[0]}", eviction_policy="none"), *args, **kwargs)

        return make

    # -- construction and the mapping ----------------------------------------------------------
    def test_index_fromcache_wraps_the_cache_itself(self, make_index: _IndexFactory) -> None:
        """``fromcache`` keeps the given cache object and updates it with the other arguments."""
        index = make_index({"a": 1, "b": 2}, c=3)
        again = Index.fromcache(index.cache, [("d", 4)])
        assert again.cache is index.cache
        assert (len(again), again["c"], "b" in again) == (4, 3, True)

    def test_index_get_set_delete(self, make_index: _IndexFactory) -> None:
        """Items behave as in a dict; a missing key raises KeyError naming it."""
        index = make_index()
        index["a"] = 1
        index[0] = None
        index[("t", 1)] = [1, 2]
        assert (index["a"], index[0], index[("t", 1)], len(index)) == (1, None, [1, 2], 3)
        assert (index.get("a"), index.get("zz"), index.get("zz", 5)) == (1, None, 5)
        del index["a"]
        assert "a" not in index
        with pytest.raises(KeyError, match="'a'"):
            index["a"]
        with pytest.raises(KeyError, match="'a'"):
            del index["a"]

    def test_index_insertion_order(self, make_index: _IndexFactory) -> None:
        """Keys iterate in insertion order; replacing keeps the place, deleting and setting moves to the end."""
        index = make_index([("a", 1), ("b", 2), ("c", 3)])
        index["a"] = 10
        del index["b"]
        index["b"] = 20
        assert list(index) == ["a", "c", "b"]
        assert list(reversed(index)) == ["b", "c", "a"]

    def test_index_views(self, make_index: _IndexFactory) -> None:
        """keys(), values() and items() are live views in insertion order; keys and items are set-like."""
        index = make_index({"a": 1, "b": 2, "c": 3})
        keys, values, items = index.keys(), index.values(), index.items()
        index["d"] = 4
        assert (list(keys), list(values), list(items)) == (
            ["a", "b", "c", "d"],
            [1, 2, 3, 4],
            [("a", 1), ("b", 2), ("c", 3), ("d", 4)],
        )
        assert ("b" in keys, 3 in values, ("c", 3) in items, ("c", 4) in items) == (True, True, True, False)
        assert (len(keys), len(values), len(items)) == (4, 4, 4)
        assert keys & {"a", "z"} == {"a"}
        assert items - {("a", 1)} == {("b", 2), ("c", 3), ("d", 4)}

    def test_index_views_skip_keys_that_vanish(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """An entry that expired (given an expiry through the cache) is left out of values and items."""
        index = Index.fromcache(cache, {"a": 1, "b": 2, "c": 3})
        cache.set("b", 2, expire=1)
        clock.advance(2)
        assert (list(index.values()), list(index.items())) == ([1, 3], [("a", 1), ("c", 3)])
        assert index == {"a": 1, "c": 3}
        assert (2 in index.values(), 3 in index.values(), ("b", 2) in index.items()) == (False, True, False)
        assert len(index) == 3  # the cache's length, which counts an expired entry until it is removed

    def test_index_update_clear_and_unhashable(self, make_index: _IndexFactory) -> None:
        """update accepts mappings, pairs and keywords; clear empties; an index is not hashable."""
        index = make_index()
        index.update({"a": 1}, b=2)
        index.update([("c", 3)])
        assert dict(index) == {"a": 1, "b": 2, "c": 3}
        index.clear()
        assert (len(index), list(index)) == (0, [])
        with pytest.raises(TypeError, match="unhashable"):
            hash(index)

    def test_index_a_value_larger_than_size_limit_is_refused(self, make_cache: CacheFactory) -> None:
        """A value the cache refuses raises ValueError naming size_limit, and changes nothing."""
        index = Index.fromcache(make_cache(size_limit=1000), a=1)
        with pytest.raises(ValueError, match=r"size_limit \(1000 bytes\)"):
            index["a"] = b"x" * 2000
        with pytest.raises(ValueError, match=r"size_limit \(1000 bytes\)"):
            index.setdefault("b", b"x" * 2000)
        with pytest.raises(ValueError, match=r"size_limit \(1000 bytes\)"):
            index.push(b"x" * 2000)
        assert dict(index) == {"a": 1}

    # -- equality ------------------------------------------------------------------------------
    def test_index_equality_is_order_sensitive_with_ordered_mappings(self, make_index: _IndexFactory) -> None:
        """Against an Index or an OrderedDict, equality needs the same order."""
        pairs = [("a", 1), ("b", 2), ("c", 3)]
        index = make_index(pairs)
        assert index == collections.OrderedDict(pairs)
        assert index != collections.OrderedDict(reversed(pairs))
        assert index == make_index(pairs)
        assert index != make_index(reversed(pairs))
        assert index != make_index(pairs[:2])

    def test_index_equality_is_order_insensitive_with_other_mappings(self, make_index: _IndexFactory) -> None:
        """Against a dict (or any other mapping), order does not matter, as between dicts."""
        index = make_index([("a", 1), ("b", 2), ("c", 3)])
        assert index == {"c": 3, "b": 2, "a": 1}
        assert index != {"a": 1, "b": 2}
        assert index != {"a": 1, "b": 2, "c": 4}
        assert index != {"a": 1, "b": 2, "d": 3}

    def test_index_is_unequal_to_what_is_not_a_mapping(self, make_index: _IndexFactory) -> None:
        """Anything that is not a mapping is simply unequal."""
        index = make_index(a=1)
        assert index != [("a", 1)]
        assert index != 1
        assert index.__eq__(1) is NotImplemented

    def test_index_a_value_equal_to_enoval_is_not_confused_with_a_missing_key(self, make_index: _IndexFactory) -> None:
        """A stored value that compares equal to the ENOVAL sentinel does not match a missing key."""
        index = make_index(a=("ENOVAL",))
        assert ENOVAL == ("ENOVAL",)  # a tuple subclass
        assert index != {"b": ("ENOVAL",)}

    # -- python-diskcache's extras -------------------------------------------------------------
    def test_index_setdefault(self, make_index: _IndexFactory) -> None:
        """setdefault returns the present value, or stores and returns the default."""
        index = make_index()
        assert (index.setdefault("a", 0), index.setdefault("a", 1), index.setdefault("b")) == (0, 0, None)
        assert dict(index) == {"a": 0, "b": None}

    def test_index_setdefault_is_atomic_across_threads(self, make_index: _IndexFactory) -> None:
        """Threads racing to setdefault one key, through one Index or their own, all get one winner's value."""
        index = make_index()
        others = [Index.fromcache(cachekit.Cache(index.directory, store=self.store)) for _ in range(4)]
        start = threading.Barrier(8)
        results: list[tuple[int, Any]] = []
        lock = threading.Lock()

        def race(target: Index, worker: int) -> None:
            start.wait(_WAIT)
            for round_ in range(20):
                value = target.setdefault(f"key{round_}", worker)
                with lock:
                    results.append((round_, value))

        threads = [threading.Thread(target=race, args=(index, worker)) for worker in range(4)]
        threads += [threading.Thread(target=race, args=(other, 4 + number)) for number, other in enumerate(others)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(_WAIT)
            assert not any(thread.is_alive() for thread in threads)
        finally:
            for other in others:
                other.cache.close()
        assert len(results) == 8 * 20
        for round_ in range(20):
            winners = {value for number, value in results if number == round_}
            assert winners == {index[f"key{round_}"]}

    def test_index_peekitem_and_popitem(self, make_index: _IndexFactory) -> None:
        """peekitem and popitem take the last item (the first with last=False); empty raises KeyError."""
        index = make_index([("a", 1), ("b", 2), ("c", 3)])
        assert (index.peekitem(), index.peekitem(last=False)) == (("c", 3), ("a", 1))
        assert (index.popitem(), index.popitem(last=False), index.popitem()) == (("c", 3), ("a", 1), ("b", 2))
        with pytest.raises(KeyError, match="dictionary is empty"):
            index.popitem()
        with pytest.raises(KeyError, match="dictionary is empty"):
            index.peekitem()

    def test_index_pop(self, make_index: _IndexFactory) -> None:
        """pop returns and removes; a missing key gives the default, or KeyError without one."""
        index = make_index({"a": 1, "b": 2})
        assert (index.pop("a"), index.pop("c", 3), index.pop("c", None)) == (1, 3, None)
        with pytest.raises(KeyError, match="'d'"):
            index.pop("d")
        assert dict(index) == {"b": 2}

    def test_index_push_and_pull(self, make_index: _IndexFactory) -> None:
        """push and pull are the cache's queues: integer keys, or prefixed string keys."""
        index = make_index()
        assert [index.push("apples"), index.push("beans"), index.push("cherries", side="front")] == [
            500000000000000,
            500000000000001,
            499999999999999,
        ]
        assert index[500000000000001] == "beans"
        assert index.push("dates", prefix="fruit") == "fruit-500000000000000"
        assert index.pull() == (499999999999999, "cherries")
        assert index.pull(side="back") == (500000000000001, "beans")
        assert index.pull(prefix="fruit") == ("fruit-500000000000000", "dates")
        assert index.pull(prefix="fruit") == (None, None)
        assert index.pull(prefix="fruit", default="empty") == "empty"

    def test_index_memoize(self, make_index: _IndexFactory) -> None:
        """memoize keeps results in the index under __cache_key__; it needs its parentheses."""
        index = make_index()
        calls: list[int] = []

        @index.memoize()
        def fibonacci(number: int) -> int:
            calls.append(number)
            return number if number < 2 else fibonacci(number - 1) + fibonacci(number - 2)

        assert fibonacci(30) == 832040
        assert len(calls) == 31
        assert index[fibonacci.__cache_key__(30)] == 832040
        memoize: Any = index.memoize
        with pytest.raises(TypeError, match="name cannot be callable"):
            memoize(fibonacci)

    def test_index_transact(self, make_index: _IndexFactory) -> None:
        """transact makes several operations one atomic transaction; a failure rolls them back."""
        index = make_index()
        with index.transact():
            index["total"] = index.get("total", 0) + 123.4
            index["count"] = index.get("count", 0) + 1

        def fail_halfway() -> None:
            with index.transact():
                index["total"] = 0
                raise RuntimeError("undo")

        with pytest.raises(RuntimeError, match="undo"):
            fail_halfway()
        assert index["total"] / index["count"] == 123.4

    def test_index_pickling_reopens_the_same_directory(self, make_index: _IndexFactory) -> None:
        """A pickled index reopens its directory, on the same store."""
        index = make_index(a=1)
        restored = pickle.loads(pickle.dumps(index))
        try:
            assert (restored.directory, restored.cache.store_name) == (index.directory, index.cache.store_name)
            restored["b"] = 2
            assert index == {"a": 1, "b": 2}
        finally:
            restored.cache.close()

    # -- the model: dict -----------------------------------------------------------------------
    def test_index_behaves_as_dict(self, tmp_path: Path) -> None:
        """Random operations on an Index and a dict return the same results and leave the same items
        in the same order, compared after every step."""
        store = self.store

        def machine() -> _IndexMachine:
            return _IndexMachine(store, tmp_path)

        # hypothesis takes any callable that returns a machine; its annotation names only classes.
        factory = cast("type[RuleBasedStateMachine]", machine)
        run_state_machine_as_test(
            factory, settings=hypothesis.settings(max_examples=100, stateful_step_count=40, deadline=None)
        )


_KEYS = st.sampled_from(["a", "b", "c", "d", 0, 1, 2, ("t", 1)])
_VALUES = st.integers(-3, 3) | st.text(alphabet="xy", max_size=2) | st.none()


class _IndexMachine(RuleBasedStateMachine):
    """Random operations on an Index and a dict, compared after every step."""

    def __init__(self, store: str, root: Path) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="index-", dir=root)
        self.cache = cachekit.Cache(self.directory, store=store, eviction_policy="none")
        self.index = Index.fromcache(self.cache)
        self.model: dict[Any, Any] = {}

    def teardown(self) -> None:
        self.cache.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def both(self, action: Callable[[Any], Any]) -> None:
        """Apply ``action`` to both; they must return the same or raise the same exception type."""
        outcomes: list[tuple[str, Any]] = []
        for target in (self.index, self.model):
            try:
                outcomes.append(("ok", action(target)))
            except KeyError as error:
                outcomes.append(("error", type(error)))
        assert outcomes[0] == outcomes[1]

    @rule(key=_KEYS, value=_VALUES)
    def set(self, key: Any, value: Any) -> None:
        def assign(target: Any) -> None:
            target[key] = value

        self.both(assign)

    @rule(key=_KEYS)
    def get(self, key: Any) -> None:
        self.both(lambda target: target[key])
        self.both(lambda target: target.get(key, "default"))
        self.both(lambda target: key in target)

    @rule(key=_KEYS)
    def delete(self, key: Any) -> None:
        def remove(target: Any) -> None:
            del target[key]

        self.both(remove)

    @rule(key=_KEYS, value=_VALUES)
    def setdefault(self, key: Any, value: Any) -> None:
        self.both(lambda target: target.setdefault(key, value))

    @rule(key=_KEYS, default=st.none() | st.just("default"))
    def pop(self, key: Any, default: Any) -> None:
        self.both(lambda target: target.pop(key) if default is None else target.pop(key, default))

    @rule(last=st.booleans())
    def popitem(self, last: bool) -> None:
        def pop_item(target: Any) -> Any:
            if isinstance(target, Index):
                return target.popitem(last=last)
            if last or not target:
                return target.popitem()
            first = next(iter(target))
            return first, target.pop(first)

        self.both(pop_item)

    @rule(last=st.booleans())
    def peekitem(self, last: bool) -> None:
        def peek_item(target: Any) -> Any:
            if isinstance(target, Index):
                return target.peekitem(last=last)
            if not target:
                raise KeyError("dictionary is empty")
            key = next(reversed(target)) if last else next(iter(target))
            return key, target[key]

        self.both(peek_item)

    @rule(pairs=st.lists(st.tuples(_KEYS, _VALUES), max_size=3))
    def update(self, pairs: list[tuple[Any, Any]]) -> None:
        self.both(lambda target: target.update(pairs))

    @rule()
    def clear(self) -> None:
        self.both(lambda target: target.clear())

    @invariant()
    def same_items(self) -> None:
        assert len(self.index) == len(self.model)
        assert list(self.index.items()) == list(self.model.items())
        assert list(reversed(self.index)) == list(reversed(self.model))
        assert self.index == self.model
        assert self.index == collections.OrderedDict(self.model)
