"""The plugin registry: entry points, lazy targets, conflicts, validation and broken plugins."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pluggy
import pytest

import cachekit
import cachekit._config
import cachekit._entry_points
import cachekit.plugins
from cachekit import PluginError, UnknownPluginError
from cachekit._entry_points import FoundEntryPoint
from cachekit._registry import Registry
from cachekit._registry import registry as global_registry
from cachekit.plugins import EvictionPolicy, PluginInfo, Serializer, hookimpl

TEST_GROUP = "cachekit-test-group"


class StorePlugin:
    """A run-time plugin that provides the given stores."""

    def __init__(self, stores: Mapping[str, object]) -> None:
        self.stores = dict(stores)

    @hookimpl
    def cachekit_stores(self) -> Mapping[str, object]:
        return self.stores


class SerializerPlugin:
    """A run-time plugin that provides the given serializers."""

    def __init__(self, serializers: Mapping[str, object]) -> None:
        self.serializers = dict(serializers)

    @hookimpl
    def cachekit_serializers(self) -> Mapping[str, object]:
        return self.serializers


class PolicyPlugin:
    """A run-time plugin that provides the given eviction policies."""

    def __init__(self, policies: Mapping[str, object]) -> None:
        self.policies = dict(policies)

    @hookimpl
    def cachekit_eviction_policies(self) -> Mapping[str, object]:
        return self.policies


@pytest.fixture
def registered() -> Iterator[Callable[..., str]]:
    """Register plugins on the process-wide registry for one test, and unregister them after."""
    plugins: list[object] = []

    def register(plugin: object, name: str | None = None) -> str:
        registered_name = cachekit.plugins.register(plugin, name)
        plugins.append(plugin)
        return registered_name

    yield register
    for plugin in plugins:
        if global_registry.manager.is_registered(plugin):
            cachekit.plugins.unregister(plugin)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Registry]:
    """A fresh registry whose entry-point group holds the given fake entry points.

    Strict mode is off unless a test turns it on (CI runs with it on).
    """
    monkeypatch.delenv("CACHEKIT_STRICT_PLUGINS", raising=False)

    def make(*entry_points: tuple[str, str]) -> Registry:
        fakes = [FoundEntryPoint(name, value, None, None) for name, value in entry_points]
        real = cachekit._entry_points.entry_points

        def entry_points_for(group: str) -> list[FoundEntryPoint]:
            return fakes if group == TEST_GROUP else real(group)

        monkeypatch.setattr(cachekit._entry_points, "entry_points", entry_points_for)
        return Registry(group=TEST_GROUP)

    return make


def run_fresh(code: str) -> Any:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("CACHEKIT_")}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class TestEntryPoints:
    def test_sqlite_is_declared_as_an_entry_point(self) -> None:
        """The distribution declares ``sqlite = cachekit_sqlite._plugin`` in the ``cachekit`` group."""
        found = [point for point in importlib.metadata.entry_points(group="cachekit") if point.name == "sqlite"]
        assert len(found) == 1
        assert found[0].value == "cachekit_sqlite._plugin"
        assert found[0].dist is not None
        assert found[0].dist.name == "cachekit"

    def test_installed_lists_sqlite_with_its_distribution(self) -> None:
        """plugins.installed() lists the sqlite store, its lazy target, plugin, distribution and version."""
        rows = [row for row in cachekit.plugins.installed() if row.kind == "store" and row.name == "sqlite"]
        assert rows == [
            PluginInfo(
                kind="store",
                name="sqlite",
                target="cachekit_sqlite._store:SQLiteStore",
                plugin="sqlite",
                distribution="cachekit",
                version=cachekit.__version__,
            )
        ]

    def test_installed_lists_the_builtins(self) -> None:
        """Built-in serializers and policies are listed as provided by cachekit itself."""
        rows = {(row.kind, row.name): row for row in cachekit.plugins.installed()}
        for kind, name in [
            ("serializer", "pickle"),
            ("serializer", "msgpack"),
            ("serializer", "json"),
            ("serializer", "raw"),
            ("eviction_policy", "none"),
            ("eviction_policy", "least-recently-stored"),
            ("eviction_policy", "least-recently-used"),
            ("eviction_policy", "least-frequently-used"),
        ]:
            row = rows[(kind, name)]
            assert row.plugin == "cachekit"
            assert (row.distribution, row.version) == ("cachekit", cachekit.__version__)

    def test_names_lists_each_kind(self) -> None:
        """plugins.names(kind) returns the sorted names of one kind."""
        assert "sqlite" in cachekit.plugins.names("store")
        assert cachekit.plugins.names("serializer") == ["json", "msgpack", "pickle", "raw"]
        assert cachekit.plugins.names("eviction_policy") == [
            "least-frequently-used",
            "least-recently-stored",
            "least-recently-used",
            "none",
        ]

    def test_names_with_a_bad_kind(self) -> None:
        """An unknown kind is a ValueError listing the three kinds."""
        with pytest.raises(ValueError, match="kind must be 'store', 'serializer' or 'eviction_policy', not 'stores'"):
            cachekit.plugins.names("stores")

    def test_plugin_manager_is_pluggy(self) -> None:
        """plugin_manager() is the pluggy manager, with entry points and built-ins registered."""
        manager = cachekit.plugins.plugin_manager()
        assert isinstance(manager, pluggy.PluginManager)
        assert manager.project_name == "cachekit"
        assert manager.has_plugin("sqlite")
        assert manager.has_plugin("cachekit")
        assert hasattr(manager.hook, "cachekit_stores")

    def test_import_loads_no_plugin_and_open_loads_the_store(self) -> None:
        """``import cachekit`` loads no entry point; opening a cache imports the store and sqlite3."""
        report = run_fresh(
            """
            import json, sys, tempfile
            import cachekit
            after_import = sorted(m for m in sys.modules if m.startswith("cachekit_sqlite") or m == "sqlite3")
            cache = cachekit.Cache(tempfile.mkdtemp())
            after_open = sorted(m for m in sys.modules if m.startswith("cachekit_sqlite") or m == "sqlite3")
            cache.close()
            print(json.dumps({"after_import": after_import, "after_open": after_open}))
            """
        )
        assert report["after_import"] == []
        assert {"cachekit_sqlite._plugin", "cachekit_sqlite._store", "sqlite3"} <= set(report["after_open"])

    def test_listing_plugins_does_not_import_the_store_module(self) -> None:
        """Listing plugins loads the entry points but not the lazy store modules, sqlite3 or lmdb."""
        report = run_fresh(
            """
            import json, sys
            import cachekit.plugins
            names = cachekit.plugins.names("store")
            prefixes = ("cachekit_sqlite", "cachekit_lmdb", "lmdb", "sqlite3")
            loaded = sorted(m for m in sys.modules if m.startswith(prefixes))
            print(json.dumps({"names": names, "loaded": loaded}))
            """
        )
        assert report["names"] == ["lmdb", "sqlite"]
        assert {"cachekit_sqlite._plugin", "cachekit_lmdb._plugin"} <= set(report["loaded"])
        assert not {"cachekit_sqlite._store", "cachekit_lmdb._store", "sqlite3", "lmdb"} & set(report["loaded"])


class TestLazyTargets:
    def test_module_class_target_is_imported_on_first_use(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registered: Callable[..., str]
    ) -> None:
        """A ``"module:Class"`` target is imported only when a cache asks for its name."""
        module = f"cachekit_lazy_probe_{uuid.uuid4().hex}"
        (tmp_path / f"{module}.py").write_text(
            textwrap.dedent(
                """
                from cachekit.plugins import EvictionPolicy

                class LargestFirst(EvictionPolicy):
                    name = "probe-largest-first"
                    rank = ("-size",)
                """
            )
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        try:
            registered(PolicyPlugin({"probe-largest-first": f"{module}:LargestFirst"}), "lazy-probe")
            assert "probe-largest-first" in cachekit.plugins.names("eviction_policy")
            assert module not in sys.modules
            with cachekit.Cache(tmp_path / "c", eviction_policy="probe-largest-first") as cache:
                assert module in sys.modules
                assert cache.eviction_policy == "probe-largest-first"
                assert (
                    global_registry.resolve("eviction_policy", "probe-largest-first")
                    is sys.modules[module].LargestFirst
                )
        finally:
            sys.modules.pop(module, None)

    def test_target_that_cannot_be_imported(self, registered: Callable[..., str]) -> None:
        """A lazy target whose module is missing raises PluginError naming the target."""
        registered(StorePlugin({"missing-module": "no_such_module_for_cachekit_tests:Store"}), "missing")
        with pytest.raises(PluginError, match="could not be loaded from 'no_such_module_for_cachekit_tests:Store'"):
            global_registry.resolve("store", "missing-module")

    def test_target_with_a_missing_attribute(self, registered: Callable[..., str]) -> None:
        """A lazy target naming an attribute the module lacks raises PluginError."""
        registered(StorePlugin({"missing-class": "cachekit_sqlite._store:NoSuchStore"}), "missing")
        with pytest.raises(PluginError, match="store 'missing-class' could not be loaded from"):
            global_registry.resolve("store", "missing-class")


class TestRegistration:
    def test_run_time_plugin_is_seen_by_new_caches(self, tmp_path: Path, registered: Callable[..., str]) -> None:
        """A serializer registered at run time is usable by caches opened afterwards."""

        class Reversed(Serializer):
            name = "reversed-pickle"

            def dumps(self, value: Any) -> bytes:
                return pickle.dumps(value)[::-1]

            def loads(self, data: bytes) -> Any:
                return pickle.loads(data[::-1])

        registered(SerializerPlugin({"reversed-pickle": Reversed}), "reversed")
        with cachekit.Cache(tmp_path / "c", serializer="reversed-pickle") as cache:
            cache.set("key", {"a": (1, 2)})
            assert cache.get("key") == {"a": (1, 2)}

    def test_registering_the_same_object_twice_is_a_no_op(self, registered: Callable[..., str]) -> None:
        """Registering one plugin object again returns its name and changes nothing."""
        plugin = StorePlugin({"twice": "cachekit_sqlite._store:SQLiteStore"})
        first = registered(plugin, "twice-plugin")
        before = len(global_registry.manager.hook.cachekit_stores.get_hookimpls())
        second = cachekit.plugins.register(plugin, "twice-plugin")
        assert first == second == "twice-plugin"
        assert len(global_registry.manager.hook.cachekit_stores.get_hookimpls()) == before
        assert cachekit.plugins.names("store").count("twice") == 1

    def test_identical_duplicate_provider_is_accepted(self, registered: Callable[..., str]) -> None:
        """A second plugin providing a name with the very same target is no conflict."""
        registered(StorePlugin({"sqlite": "cachekit_sqlite._store:SQLiteStore"}), "same-sqlite")
        assert cachekit.plugins.names("store").count("sqlite") == 1
        assert global_registry.resolve("store", "sqlite").__name__ == "SQLiteStore"

    def test_conflicting_registration_names_both_providers(
        self, tmp_path: Path, registered: Callable[..., str]
    ) -> None:
        """Two targets for one name raise PluginError naming both plugins; the registry stays usable."""
        plugin = StorePlugin({"sqlite": "impostor.module:FakeStore"})
        with pytest.raises(PluginError, match="two plugins provide the store 'sqlite'") as raised:
            registered(plugin, "impostor")
        message = str(raised.value)
        assert "plugin 'sqlite' from cachekit" in message
        assert "cachekit_sqlite._store:SQLiteStore" in message
        assert "plugin 'impostor' (impostor.module:FakeStore)" in message
        assert not global_registry.manager.is_registered(plugin)
        assert cachekit.plugins.names("store").count("sqlite") == 1
        with cachekit.Cache(tmp_path / "c") as cache:
            assert cache.store_name == "sqlite"
            assert type(cache.store).__name__ == "SQLiteStore"
        with pytest.raises(PluginError, match="two plugins provide"):
            registered(plugin, "impostor")

    def test_unregister_removes_what_a_plugin_provides(self, registered: Callable[..., str]) -> None:
        """After unregister, the plugin's names are gone and resolving them fails."""
        plugin = StorePlugin({"temporary": "cachekit_sqlite._store:SQLiteStore"})
        registered(plugin, "temporary-plugin")
        assert global_registry.resolve("store", "temporary").__name__ == "SQLiteStore"
        cachekit.plugins.unregister(plugin)
        assert "temporary" not in cachekit.plugins.names("store")
        with pytest.raises(UnknownPluginError, match="unknown store 'temporary'"):
            global_registry.resolve("store", "temporary")


class TestValidation:
    def test_store_that_is_not_a_store_subclass(self, tmp_path: Path, registered: Callable[..., str]) -> None:
        """A store target that is not a Store subclass raises PluginError before anything is created."""
        registered(StorePlugin({"not-a-store": dict}), "bad-store")
        with pytest.raises(PluginError, match=r"the store 'not-a-store' is <class 'dict'>, which is not a subclass"):
            cachekit.Cache(tmp_path / "c", store="not-a-store")
        assert not (tmp_path / "c").exists()

    def test_serializer_instance_is_not_a_class(self, registered: Callable[..., str]) -> None:
        """A serializer given as an instance instead of a class raises PluginError."""

        class Fine(Serializer):
            name = "fine"

            def dumps(self, value: Any) -> bytes:
                return b""

            def loads(self, data: bytes) -> Any:
                return None

        registered(SerializerPlugin({"instance": Fine()}), "instance-plugin")
        with pytest.raises(PluginError, match=r"not a subclass of cachekit\.Serializer"):
            global_registry.resolve("serializer", "instance")

    def test_policy_ranking_on_an_unknown_field(self, registered: Callable[..., str]) -> None:
        """A policy that ranks on a field entries do not have raises PluginError listing the fields."""

        class ByColour(EvictionPolicy):
            name = "by-colour"
            rank = ("-colour",)

        registered(PolicyPlugin({"by-colour": ByColour}), "colour")
        with pytest.raises(PluginError, match="eviction policy 'by-colour' ranks on '-colour'") as raised:
            global_registry.resolve("eviction_policy", "by-colour")
        assert "store_time, access_time, access_count, size" in str(raised.value)

    def test_policy_ranking_on_known_fields_is_accepted(self, registered: Callable[..., str]) -> None:
        """Known rank fields, ascending or descending, pass validation."""

        class Mixed(EvictionPolicy):
            name = "mixed"
            rank = ("-size", "access_time")

        registered(PolicyPlugin({"mixed": Mixed}), "mixed")
        assert global_registry.resolve("eviction_policy", "mixed") is Mixed

    @pytest.mark.parametrize("reserved", ["bytes", "str", "int", "float"])
    def test_serializer_with_a_reserved_name(self, registered: Callable[..., str], reserved: str) -> None:
        """The names of natively stored kinds cannot be registered as serializers."""
        registered(SerializerPlugin({reserved: "cachekit._serializers:PickleSerializer"}), f"reserved-{reserved}")
        with pytest.raises(PluginError, match=f"serializer name '{reserved}' is reserved"):
            global_registry.resolve("serializer", reserved)

    def test_serializer_class_claiming_a_reserved_name(self, registered: Callable[..., str]) -> None:
        """A serializer class whose ``name`` differs from its registered name (here a reserved one) is refused."""

        class Sneaky(Serializer):
            name = "bytes"

            def dumps(self, value: Any) -> bytes:
                return pickle.dumps(value)

            def loads(self, data: bytes) -> Any:
                return pickle.loads(data)

        registered(SerializerPlugin({"sneaky": Sneaky}), "sneaky-plugin")
        with pytest.raises(PluginError, match="registered as 'sneaky' calls itself 'bytes'"):
            global_registry.resolve("serializer", "sneaky")


class TestBrokenEntryPoints:
    def test_failed_import_warns_and_others_still_load(self, fake_entry_points: Callable[..., Registry]) -> None:
        """A plugin that fails to import gives a RuntimeWarning naming it; the other plugins still load."""
        registry = fake_entry_points(
            ("broken", "no_such_module_for_cachekit_tests"),
            ("sqlite", "cachekit_sqlite._plugin"),
        )
        with pytest.warns(RuntimeWarning, match=r"cachekit plugin 'broken' \(no_such_module_for_cachekit_tests\)"):
            names = registry.names("store")
        assert names == ["sqlite"]
        assert registry.resolve("store", "sqlite").__name__ == "SQLiteStore"

    def test_opening_the_broken_store_chains_the_original_error(
        self, tmp_path: Path, fake_entry_points: Callable[..., Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Opening the store of a plugin that failed to load raises UnknownPluginError chained to the cause."""
        registry = fake_entry_points(
            ("broken", "no_such_module_for_cachekit_tests"),
            ("sqlite", "cachekit_sqlite._plugin"),
        )
        monkeypatch.setattr(cachekit._config, "registry", registry)
        with (
            pytest.warns(RuntimeWarning, match="failed to load"),
            pytest.raises(
                UnknownPluginError, match="the plugin that provides the store 'broken' failed to load"
            ) as raised,
        ):
            cachekit.open(f"broken://{tmp_path}/c")
        assert isinstance(raised.value.__cause__, ModuleNotFoundError)
        assert raised.value.__cause__.name == "no_such_module_for_cachekit_tests"
        assert "ModuleNotFoundError" in str(raised.value)
        assert not (tmp_path / "c").exists()

    def test_plugin_raising_on_import_is_chained(
        self, tmp_path: Path, fake_entry_points: Callable[..., Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Any exception a plugin module raises on import is caught, warned about and chained."""
        module = f"cachekit_exploding_probe_{uuid.uuid4().hex}"
        (tmp_path / f"{module}.py").write_text("raise RuntimeError('boom at import')\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        registry = fake_entry_points(("exploding", module))
        with pytest.warns(RuntimeWarning, match="RuntimeError: boom at import"):
            assert registry.names("store") == []
        with pytest.raises(UnknownPluginError) as raised:
            registry.resolve("store", "exploding")
        assert isinstance(raised.value.__cause__, RuntimeError)
        assert str(raised.value.__cause__) == "boom at import"

    def test_strict_mode_raises(
        self, fake_entry_points: Callable[..., Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With CACHEKIT_STRICT_PLUGINS=1 a plugin that fails to import raises PluginError, chained."""
        monkeypatch.setenv("CACHEKIT_STRICT_PLUGINS", "1")
        registry = fake_entry_points(("broken", "no_such_module_for_cachekit_tests"))
        with pytest.raises(PluginError, match=r"'broken'.*failed to load.*CACHEKIT_STRICT_PLUGINS is set") as raised:
            registry.names("store")
        assert isinstance(raised.value.__cause__, ModuleNotFoundError)

    def test_strict_mode_keeps_raising(
        self, fake_entry_points: Callable[..., Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """In strict mode a later lookup fails again instead of silently using a partly loaded registry."""
        monkeypatch.setenv("CACHEKIT_STRICT_PLUGINS", "1")
        registry = fake_entry_points(
            ("broken", "no_such_module_for_cachekit_tests"),
            ("sqlite", "cachekit_sqlite._plugin"),
        )
        with pytest.raises(PluginError, match="failed to load"):
            registry.names("store")
        with pytest.raises(PluginError, match="failed to load"):
            registry.resolve("store", "sqlite")

    def test_strict_mode_zero_means_off(
        self, fake_entry_points: Callable[..., Registry], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CACHEKIT_STRICT_PLUGINS=0 keeps the warning behaviour."""
        monkeypatch.setenv("CACHEKIT_STRICT_PLUGINS", "0")
        registry = fake_entry_points(("broken", "no_such_module_for_cachekit_tests"))
        with pytest.warns(RuntimeWarning, match="failed to load"):
            assert registry.names("store") == []

    def test_entry_points_without_distribution_are_listed(self, fake_entry_points: Callable[..., Registry]) -> None:
        """An entry point with no distribution is listed with distribution and version None."""
        registry = fake_entry_points(("sqlite", "cachekit_sqlite._plugin"))
        rows = [row for row in registry.installed() if row.kind == "store"]
        assert rows == [PluginInfo("store", "sqlite", "cachekit_sqlite._store:SQLiteStore", "sqlite", None, None)]

    def test_entry_points_load_once(self, fake_entry_points: Callable[..., Registry]) -> None:
        """A failing entry point warns once, not on every lookup."""
        registry = fake_entry_points(("broken", "no_such_module_for_cachekit_tests"))
        with pytest.warns(RuntimeWarning):
            registry.names("store")
        assert registry.names("store") == []
        assert registry.names("serializer") == ["json", "msgpack", "pickle", "raw"]


class TestRunTimeNames:
    def test_run_time_plugins_get_readable_unique_names(self, registered: Callable[..., str]) -> None:
        """Plugins registered without a name are named after their class, made unique, never by id()."""
        first = registered(PolicyPlugin({}))
        second = registered(PolicyPlugin({}))
        assert first == f"{__name__}.PolicyPlugin"
        assert second == f"{__name__}.PolicyPlugin#2"

    def test_a_taken_name_is_a_plugin_error(self, registered: Callable[..., str]) -> None:
        """Registering a second plugin under a name already in use raises PluginError, not pluggy's ValueError."""
        registered(PolicyPlugin({}), "taken-name")
        with pytest.raises(PluginError, match="'taken-name' is already registered"):
            cachekit.plugins.register(PolicyPlugin({}), "taken-name")
