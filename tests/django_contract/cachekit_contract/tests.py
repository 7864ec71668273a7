"""Django's cache-backend contract, run against cachekit's Django backend on each cachekit store.

Every test here is Django's own, inherited unchanged from ``cache/tests.py`` of
Django's test suite (the suite of the installed Django version, which ``run.py``
downloads); only the cache configuration differs:

- ``BaseCacheTests``, the tests that Django applies to each of its built-in
  backends, set up the way Django sets up ``FileBasedCacheTests``: every alias of
  ``caches_setting_for_tests()`` uses the backend under test, in one fresh
  directory per test;
- the tests of the cache middleware, ``cache_page``, ``django.utils.cache``,
  HEAD requests, i18n cache keys and template responses, which Django runs on
  ``LocMemCache``: each test gets the same ``CACHES`` with the backend under test,
  every distinct ``LOCATION`` becoming a fresh directory of its own.

Django's other cache test classes are about other backends (the dummy, local
memory, database, file, memcached and Redis backends, and two LocMemCache
subclasses) or use no cache, and are left out.

Two environment variables, set by ``run.py``, choose what runs:

``CACHEKIT_CONTRACT_STORES``
    the cachekit stores to test, comma-separated (``sqlite,lmdb``);
``CACHEKIT_CONTRACT_BACKEND``
    the backend's dotted path (``cachekit_django.CachekitCache``).  With
    cachekit's backend, ``LOCATION`` is a config string naming the store
    (``lmdb:///tmp/.../cache``); with another backend, such as Django's
    ``FileBasedCache`` (used to check this harness), it is the bare directory.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path

# The module, not its classes: a TestCase class imported here would run here too, on LocMemCache.
from cache import tests as django_tests
from django.conf import settings
from django.core.cache import caches, close_caches
from django.test import TestCase, override_settings
from django.test.signals import setting_changed
from django.utils.module_loading import import_string

CACHEKIT_BACKEND = "cachekit_django.CachekitCache"
BACKEND = os.environ.get("CACHEKIT_CONTRACT_BACKEND") or CACHEKIT_BACKEND
IS_CACHEKIT = BACKEND.startswith("cachekit_django.")
#: The stores that can be tested, with the names used in the test classes' names.
STORE_NAMES = {"sqlite": "SQLite", "lmdb": "LMDB"}
STORES = [store.strip() for store in os.environ.get("CACHEKIT_CONTRACT_STORES", "sqlite,lmdb").split(",")]
for _store in STORES:
    if _store not in STORE_NAMES:
        raise ValueError(f"CACHEKIT_CONTRACT_STORES names {_store!r}; the stores are {', '.join(STORE_NAMES)}")

#: Django's tests of code that uses the default cache (and, for the middleware, another alias).
MIDDLEWARE_TESTS = (
    django_tests.CacheUtils,
    django_tests.PrefixedCacheUtils,
    django_tests.CacheHEADTest,
    django_tests.CacheI18nTest,
    django_tests.PrefixedCacheI18nTest,
    django_tests.CacheMiddlewareTest,
    django_tests.TestWithTemplateResponse,
)


def location(store, directory):
    """The ``LOCATION`` of a cache in ``directory`` on ``store``."""
    directory = os.path.abspath(directory)
    return f"{store}://{directory}" if IS_CACHEKIT else directory


class StoreCacheTests(django_tests.BaseCacheTests):
    """``BaseCacheTests`` on ``store``, set up as Django sets up ``FileBasedCacheTests``."""

    store = ""

    def setUp(self):
        super().setUp()
        self.dirname = tempfile.mkdtemp(prefix=f"cachekit-{self.store}-")
        self.addCleanup(shutil.rmtree, self.dirname)
        # Caches location cannot be modified through override_settings /
        # modify_settings, hence settings are manipulated directly here and the
        # setting_changed signal is triggered manually (as FileBasedCacheTests does).
        for cache_params in settings.CACHES.values():
            cache_params["LOCATION"] = location(self.store, self.dirname)
        setting_changed.send(self.__class__, setting="CACHES", enter=False)
        # After tearDown()'s cache.clear() and before the directory goes: what
        # Django does at the end of every request.
        self.addCleanup(close_caches)

    def test_cachekit_contract_harness(self):
        """Not one of Django's tests: the caches under test are BACKEND's, in this test's directory, on the store."""
        default = caches["default"]
        assert settings.CACHES["default"]["BACKEND"] == BACKEND, settings.CACHES["default"]
        assert isinstance(default, import_string(BACKEND)), type(default)
        default.set("harness", "value")
        assert default.get("harness") == "value"
        if IS_CACHEKIT:
            marker = json.loads((Path(self.dirname) / "cachekit.json").read_text())
            assert marker["store"] == self.store, marker
        else:
            assert os.listdir(self.dirname), f"nothing was written in {self.dirname}"


class StoreCaches:
    """Runs a test class of Django's with its ``CACHES`` moved to the backend under test, on ``store``.

    The class's own ``@override_settings(CACHES=...)`` names LocMemCache; for each
    test, every alias gets the backend under test instead, with the alias's other
    parameters, and every distinct LocMemCache ``LOCATION`` (the name of a separate
    memory store) becomes a fresh directory of its own.
    """

    store = ""

    def setUp(self):
        root = tempfile.mkdtemp(prefix=f"cachekit-{self.store}-")
        self.addCleanup(shutil.rmtree, root)
        directories = {}
        configuration = {}
        for alias, params in settings.CACHES.items():
            name = params.get("LOCATION", "")
            if name not in directories:
                directories[name] = os.path.join(root, f"location-{len(directories)}")
                os.mkdir(directories[name], 0o700)
            configuration[alias] = {**params, "BACKEND": BACKEND, "LOCATION": location(self.store, directories[name])}
        moved = override_settings(CACHES=configuration)
        moved.enable()  # sends setting_changed, which closes and forgets the LocMemCache caches
        self.addCleanup(moved.disable)  # after the class's own cleanups; closes our caches
        super().setUp()

    def test_cachekit_contract_harness(self):
        """Not one of Django's tests: every alias's cache is BACKEND's, in a directory of its own LOCATION."""
        directories = {}
        for alias, params in settings.CACHES.items():
            assert params["BACKEND"] == BACKEND, (alias, params)
            assert isinstance(caches[alias], import_string(BACKEND)), (alias, type(caches[alias]))
            directories.setdefault(params["LOCATION"], alias)
        for where, alias in directories.items():
            caches[alias].set("harness", where)
        for where, alias in directories.items():
            assert caches[alias].get("harness") == where, (alias, caches[alias].get("harness"))


def store_test_classes(store):
    """The test classes for ``store``, by name."""
    prefix = f"Cachekit{STORE_NAMES[store]}"
    attributes = {"store": store, "__module__": __name__}
    name = f"{prefix}CacheTests"
    cache_tests = type(name, (StoreCacheTests, TestCase), {**attributes, "__qualname__": name})
    classes = {name: override_settings(CACHES=django_tests.caches_setting_for_tests(BACKEND=BACKEND))(cache_tests)}
    for tests in MIDDLEWARE_TESTS:
        name = prefix + tests.__name__
        classes[name] = type(name, (StoreCaches, tests), {**attributes, "__qualname__": name})
    return classes


for _store in STORES:
    globals().update(store_test_classes(_store))
