"""``cachekit.Deque`` on the default store, constructed without a cache.

Everything that depends on the store (the deque API against
``collections.deque``, across threads and processes) is in the conformance
suite: ``cachekit.testing.DequeContract``, run by ``test_conformance.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cachekit import Deque


class TestConstruction:
    def test_construction_in_a_new_temporary_directory(self) -> None:
        """Without a directory, a deque lives in a new temporary directory, like Cache()."""
        deque = Deque("abc")
        try:
            assert Path(deque.directory).is_dir()
            assert deque.cache.directory == deque.directory
            assert list(deque) == ["a", "b", "c"]
            assert deque.cache.eviction_policy == "none"
            assert repr(deque) == f"Deque(directory={deque.directory!r})"
        finally:
            deque.cache.close()
            shutil.rmtree(deque.directory)

    def test_construction_in_a_directory_reopens_what_is_there(self, tmp_path: Path) -> None:
        """Two deques on one directory see the same items; the iterable is appended to them."""
        first = Deque([1, 2], tmp_path)
        second = Deque([3], directory=str(tmp_path))
        try:
            assert list(first) == list(second) == [1, 2, 3]
        finally:
            first.cache.close()
            second.cache.close()
