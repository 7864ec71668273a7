"""The reliability suite: crashes, contention, fork, full disks, corrupt files and hostile input.

Every scenario runs on every installed store (the ``store`` fixture).  By
default the scenarios run at the bounded sizes CI can afford; set
``CACHEKIT_RELIABILITY=long`` for the long mode, e.g.::

    CACHEKIT_RELIABILITY=long .venv/bin/python -m pytest tests/reliability -p no:randomly

``scaled(ci, long)`` picks a size (rounds, processes, seconds) for the mode in force.
"""

from __future__ import annotations

import os

import pytest

import cachekit.plugins

#: True when the long mode was asked for (``CACHEKIT_RELIABILITY=long``).
LONG = os.environ.get("CACHEKIT_RELIABILITY", "").strip().lower() == "long"


def scaled(ci: int, long: int) -> int:
    """The size of a scenario in the mode in force: ``ci`` by default, ``long`` in the long mode."""
    return long if LONG else ci


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``reliability``, so ``-m "not reliability"`` can leave them out."""
    folder = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(folder):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(params=cachekit.plugins.names("store"))
def store(request: pytest.FixtureRequest) -> str:
    """The name of each installed store in turn."""
    name: str = request.param
    return name
