"""``cachekit.Index`` on the default store, constructed without a cache.

Everything that depends on the store (the ordered-mapping API against
``dict``) is in the conformance suite: ``cachekit.testing.IndexContract``,
run by ``test_conformance.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cachekit import Index


class TestConstruction:
    def test_without_a_directory_in_a_new_temporary_one(self) -> None:
        """Index() and Index(None, ...) live in new temporary directories, with the none policy."""
        for index in (Index({"a": 1}), Index(None, {"a": 1})):
            try:
                assert Path(index.directory).is_dir()
                assert dict(index) == {"a": 1}
                assert index.cache.eviction_policy == "none"
                assert repr(index) == f"Index({index.directory!r})"
            finally:
                index.cache.close()
                shutil.rmtree(index.directory)

    def test_a_directory_first_then_update_arguments(self, tmp_path: Path) -> None:
        """A path (str, bytes or PathLike) first opens that directory; the rest update it as dict.update."""
        first = Index(str(tmp_path), {"a": 1, "b": 2}, c=3)
        second = Index(bytes(tmp_path), [("d", 4)])
        third = Index(tmp_path, e=5)
        try:
            assert list(first.items()) == [("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]
            assert first.directory == second.directory == third.directory
        finally:
            for index in (first, second, third):
                index.cache.close()
