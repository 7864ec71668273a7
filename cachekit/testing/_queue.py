"""The queue API: ``push``, ``pull``, ``peek`` and ``peekitem``."""

from __future__ import annotations

from typing import Any

import pytest

import cachekit

from ._support import FakeClock, Point, _Harness

#: The first queue key python-diskcache hands out (``push`` without a prefix).
QUEUE_START = 500_000_000_000_000


class QueueContract(_Harness):
    """``push``, ``pull``, ``peek`` and ``peekitem``, as in python-diskcache."""

    def test_push_and_pull_without_prefix(self, cache: cachekit.Cache) -> None:
        """Without a prefix, keys are integers from 500000000000000; ``pull`` takes from the front."""
        assert cache.push("a") == QUEUE_START
        assert cache.push("b") == QUEUE_START + 1
        assert cache.push("z", side="front") == QUEUE_START - 1
        assert cache.pull() == (QUEUE_START - 1, "z")
        assert cache.pull(side="back") == (QUEUE_START + 1, "b")
        assert cache.pull() == (QUEUE_START, "a")
        assert cache.pull() == (None, None)
        assert len(cache) == 0

    def test_push_and_pull_with_a_prefix(self, cache: cachekit.Cache) -> None:
        """With a str prefix, keys are ``prefix-<15 digits>`` and each prefix is a queue of its own."""
        assert cache.push("first", prefix="jobs") == f"jobs-{QUEUE_START:015d}"
        assert cache.push("second", prefix="jobs") == f"jobs-{QUEUE_START + 1:015d}"
        assert cache.push("other", prefix="mail") == f"mail-{QUEUE_START:015d}"
        assert cache.push("plain") == QUEUE_START
        assert cache.pull(prefix="jobs") == (f"jobs-{QUEUE_START:015d}", "first")
        assert cache.pull(prefix="mail") == (f"mail-{QUEUE_START:015d}", "other")
        assert cache.pull(prefix="mail") == (None, None)
        assert cache.pull() == (QUEUE_START, "plain")
        assert cache.pull() == (None, None)
        assert cache.pull(prefix="jobs") == (f"jobs-{QUEUE_START + 1:015d}", "second")

    def test_front_and_back_pushes_interleave(self, cache: cachekit.Cache) -> None:
        """Pushes to the front and back build one ordered queue, pulled from either side."""
        for value in range(6):
            cache.push(value, prefix="q", side="back" if value % 2 else "front")
        pulled = [cache.pull(prefix="q")[1] for _ in range(3)]
        pulled += [cache.pull(prefix="q", side="back")[1] for _ in range(3)]
        assert pulled == [4, 2, 0, 5, 3, 1]

    def test_peek_does_not_remove(self, cache: cachekit.Cache) -> None:
        """``peek`` returns the front (or back) item and leaves it in place."""
        first = cache.push("first", prefix="q")
        last = cache.push("last", prefix="q")
        assert cache.peek(prefix="q") == (first, "first")
        assert cache.peek(prefix="q", side="back") == (last, "last")
        assert cache.peek(prefix="q") == (first, "first")
        assert len(cache) == 2

    def test_empty_queues_return_the_default(self, cache: cachekit.Cache) -> None:
        """``pull`` and ``peek`` on an empty queue return ``default``, ``(None, None)`` unless given."""
        assert cache.pull() == (None, None)
        assert cache.peek() == (None, None)
        assert cache.pull(prefix="q", default="empty") == "empty"
        assert cache.peek(prefix="q", default="empty", side="back") == "empty"

    def test_queue_results_with_expire_time_and_tag(self, cache: cachekit.Cache, clock: FakeClock) -> None:
        """With ``expire_time``/``tag``, queue reads return ``((key, value), expire_time, tag)`` shapes."""
        key = cache.push("value", prefix="q", expire=30, tag="tag")
        expire_time = clock.now + 30
        assert cache.peek(prefix="q", expire_time=True) == ((key, "value"), expire_time)
        assert cache.peek(prefix="q", tag=True) == ((key, "value"), "tag")
        assert cache.peekitem(expire_time=True, tag=True) == ((key, "value"), expire_time, "tag")
        assert cache.pull(prefix="q", expire_time=True, tag=True) == ((key, "value"), expire_time, "tag")
        assert cache.pull(prefix="q", expire_time=True) == ((None, None), None)
        assert cache.pull(prefix="q", tag=True) == ((None, None), None)
        assert cache.pull(prefix="q", expire_time=True, tag=True) == ((None, None), None, None)
        assert cache.peek(prefix="q", default="d", tag=True) == ("d", None)

    def test_peekitem_returns_the_last_or_first_inserted_item(self, cache: cachekit.Cache) -> None:
        """``peekitem`` returns the last inserted ``(key, value)`` (the first with ``last=False``)."""
        with pytest.raises(KeyError):
            cache.peekitem()
        with pytest.raises(KeyError):
            cache.peekitem(last=False)
        cache.set("a", 1)
        cache.set("b", 2)
        cache.set("c", 3)
        cache.set("a", 10)
        assert cache.peekitem() == ("c", 3)
        assert cache.peekitem(last=False) == ("a", 10)
        assert len(cache) == 3

    def test_queue_values_of_any_kind(self, cache: cachekit.Cache) -> None:
        """Queued values of any kind read back equal."""
        values: list[Any] = [None, 1, 2.5, "text", b"bytes", {"a": [1, 2]}, Point(3, 4)]
        for value in values:
            cache.push(value, prefix="mixed")
        assert [cache.pull(prefix="mixed")[1] for _ in values] == values
