"""Run the conformance suite (:mod:`cachekit.testing`) against every installed store.

One test class per store is created at import time, so a store installed
later (LMDB, or a third-party plugin) joins the suite without new test code.
"""

from __future__ import annotations

import re
import sys

import pytest

if "cachekit.testing" not in sys.modules:  # rewriting needs to happen before the first import
    pytest.register_assert_rewrite("cachekit.testing")

import cachekit.plugins
from cachekit.testing import StoreConformance


def _class_name(store: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", store)
    return "Test" + "".join(word[:1].upper() + word[1:] for word in words) + "Store"


for _store in cachekit.plugins.names("store"):
    globals()[_class_name(_store)] = type(
        _class_name(_store),
        (StoreConformance,),
        {"store": _store, "__module__": __name__, "__doc__": f"The conformance suite on the {_store!r} store."},
    )
del _store
