"""FanoutCache: what does not depend on a store (a temporary directory, a file in the way).

The Cache API over shards, stable shard choice and honest failure on a locked
shard, on each store, are in the conformance suite:
``cachekit.testing.FanoutContract``, run by ``test_conformance.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cachekit
from cachekit import FanoutCache


def test_temporary_directory() -> None:
    """directory=None creates a temporary directory."""
    with FanoutCache(shards=2) as fanout:
        assert os.path.isdir(os.path.join(fanout.directory, "001"))


def test_a_file_in_place_of_the_directory_is_a_directory_error(tmp_path: Path) -> None:
    """A file where the FanoutCache's directory should be raises DirectoryError, naming the problem."""
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(cachekit.DirectoryError, match="not a file"):
        cachekit.FanoutCache(tmp_path / "file")
