"""Config strings, setting parsers and how a cache's configuration is built, persisted and refused."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import cachekit
import cachekit.plugins
import cachekit_sqlite
from cachekit import ConfigError, PluginError, UnknownPluginError
from cachekit._settings import boolean, duration, size
from cachekit._url import ParsedURL, looks_like_config_string, parse
from cachekit.plugins import Setting, integer


def sqlite_url(path: Path | str, query: str = "") -> str:
    """``sqlite:///abs/path`` (three slashes: the path is absolute) with an optional query."""
    text = f"sqlite://{path}"
    return f"{text}?{query}" if query else text


class OtherStore(cachekit_sqlite.SQLiteStore):
    """A second store for tests: SQLite under another name, with one setting of its own."""

    settings: Mapping[str, Setting] = {
        **cachekit_sqlite.SQLiteStore.settings,
        "other_knob": Setting(3, integer(0), "A tuning knob only this store has.", persist=False),
    }


class OtherStorePlugin:
    """A plugin defined at run time that provides the ``other`` store."""

    @cachekit.plugins.hookimpl
    def cachekit_stores(self) -> Mapping[str, object]:
        return {"other": OtherStore}


@pytest.fixture
def other_store() -> Iterator[str]:
    """Register the ``other`` store for one test."""
    plugin = OtherStorePlugin()
    cachekit.plugins.register(plugin)
    try:
        yield "other"
    finally:
        cachekit.plugins.unregister(plugin)


@pytest.fixture(autouse=True)
def _no_default_store_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHEKIT_DEFAULT_STORE", raising=False)


def marker_store(directory: Path) -> str:
    """The store recorded in a cache directory's marker file."""
    return str(json.loads((directory / "cachekit.json").read_text())["store"])


class TestGrammar:
    def test_absolute_path_with_three_slashes(self) -> None:
        """``scheme:///abs/path`` names the store and an absolute directory."""
        assert parse("sqlite:///var/cache/app") == ParsedURL("sqlite", "/var/cache/app", {})

    def test_relative_path_after_a_single_colon(self) -> None:
        """``scheme:rel/path`` names the store and a relative directory."""
        assert parse("sqlite:var/cache") == ParsedURL("sqlite", "var/cache", {})

    def test_bare_path_means_the_default_store(self) -> None:
        """A string without a scheme is a path with no store named."""
        assert parse("/var/cache/app") == ParsedURL(None, "/var/cache/app", {})
        assert parse("relative/dir") == ParsedURL(None, "relative/dir", {})

    def test_scheme_is_case_insensitive(self) -> None:
        """The scheme is lower-cased, as URL schemes are."""
        assert parse("SQLite:///x").store == "sqlite"

    def test_path_and_values_are_percent_decoded(self) -> None:
        """Percent escapes in the path and in parameter values are decoded."""
        parsed = parse("sqlite:///tmp/a%20b%3Fc?eviction_policy=least%2Drecently%2Dused&secret_key=x%26y%3Dz")
        assert parsed.path == "/tmp/a b?c"
        assert parsed.settings == {"eviction_policy": "least-recently-used", "secret_key": "x&y=z"}

    def test_query_parameters_become_raw_settings(self) -> None:
        """Query parameters are returned as strings, in order, unvalidated."""
        parsed = parse("sqlite:///x?size_limit=1GiB&statistics=true&anything=goes")
        assert parsed.settings == {"size_limit": "1GiB", "statistics": "true", "anything": "goes"}

    def test_looks_like_config_string_needs_two_slashes(self) -> None:
        """Only ``scheme://`` marks a config string; ``a:b`` and plain paths do not."""
        assert looks_like_config_string("sqlite:///x")
        assert looks_like_config_string("lmdb://rel")
        assert not looks_like_config_string("/var/cache")
        assert not looks_like_config_string("sqlite:rel")

    def test_host_part_suggests_three_slashes(self) -> None:
        """``sqlite://var/cache`` is refused with both the absolute and the relative spelling."""
        with pytest.raises(ConfigError, match="host part") as raised:
            parse("sqlite://var/cache")
        assert "'sqlite:///var/cache'" in str(raised.value)
        assert "'sqlite:var/cache'" in str(raised.value)

    @pytest.mark.parametrize("text", ["sqlite://", "sqlite:"])
    def test_no_directory_is_an_error(self, text: str) -> None:
        """A scheme with no path says that a directory is missing."""
        with pytest.raises(ConfigError, match="names no directory"):
            parse(text)

    @pytest.mark.parametrize("text", ["", "   "])
    def test_empty_string_is_an_error(self, text: str) -> None:
        """An empty config string is refused with an example of a valid one."""
        with pytest.raises(ConfigError, match="empty"):
            parse(text)

    def test_non_string_is_a_type_error(self) -> None:
        """Only str is accepted as a config string."""
        with pytest.raises(TypeError, match="must be a str, got bytes"):
            parse(b"sqlite:///x")  # type: ignore[arg-type]

    def test_repeated_parameter_is_named(self) -> None:
        """A parameter given twice is an error naming it."""
        with pytest.raises(ConfigError, match="parameter 'size_limit' is given twice"):
            parse("sqlite:///x?size_limit=1&size_limit=2")

    @pytest.mark.parametrize("query", ["statistics", "statistics="])
    def test_parameter_without_value_is_named(self, query: str) -> None:
        """A parameter with no value is an error naming it and showing the fix."""
        with pytest.raises(ConfigError, match=r"parameter 'statistics' .* has no value; write statistics=VALUE"):
            parse(f"sqlite:///x?{query}")

    @pytest.mark.parametrize("name", ["1abc", "a-b", "a b"])
    def test_malformed_parameter_name_is_named(self, name: str) -> None:
        """A parameter name that is not an identifier is an error naming it."""
        with pytest.raises(ConfigError, match=f"malformed parameter name '{name}'"):
            parse(f"sqlite:///x?{name}=1")

    @pytest.mark.parametrize("text", ["sqlite:///x?", "sqlite:///x?a=1&&b=2", "sqlite:///x?a=1&"])
    def test_empty_parameter_is_an_error(self, text: str) -> None:
        """A stray ``?`` or ``&`` is an error rather than silently ignored."""
        with pytest.raises(ConfigError, match="empty parameter"):
            parse(text)


class TestSizes:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("512MiB", 512 * 2**20),
            ("1GB", 10**9),
            ("1GiB", 2**30),
            ("64KiB", 65536),
            ("2kb", 2000),
            ("1TiB", 2**40),
            ("10B", 10),
            ("4096", 4096),
            (" 1.5 KiB ", 1536),
            (4096, 4096),
            (0, 0),
        ],
    )
    def test_accepted_sizes(self, text: object, expected: int) -> None:
        """Sizes accept byte counts and SI or binary units, case-insensitively."""
        assert size(text) == expected

    @pytest.mark.parametrize("unit", ["G", "M", "K", "T", "g", "m", "k"])
    def test_bare_unit_letter_is_ambiguous(self, unit: str) -> None:
        """A bare ``G``/``M``/``K`` is refused, with both unambiguous spellings suggested."""
        with pytest.raises(ValueError, match="is ambiguous") as raised:
            size(f"1{unit}")
        upper = unit.upper()
        assert f"{upper}iB or {upper}B" in str(raised.value)

    @pytest.mark.parametrize("value", [-1, "-1", "-1KiB"])
    def test_negative_size_is_refused(self, value: object) -> None:
        """A size cannot be negative."""
        with pytest.raises(ValueError, match=r"negative|expected a size"):
            size(value)

    @pytest.mark.parametrize("value", [True, False])
    def test_bool_size_is_refused(self, value: bool) -> None:
        """True and False are not sizes even though they are ints."""
        with pytest.raises(TypeError, match="got the bool"):
            size(value)

    @pytest.mark.parametrize("value", ["1e3", "lots", "1 GiB extra", "1PB"])
    def test_unparseable_size_is_refused(self, value: str) -> None:
        """Strings that are not a number with a known unit are refused with examples."""
        with pytest.raises(ValueError, match="expected a size such as 4096"):
            size(value)

    @pytest.mark.parametrize("value", [1.5, None, [1]])
    def test_non_int_size_is_a_type_error(self, value: object) -> None:
        """Only ints and strings are sizes."""
        with pytest.raises(TypeError, match="expected a size in bytes"):
            size(value)


class TestDurations:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("30s", 30.0),
            ("250ms", 0.25),
            ("5m", 300.0),
            ("2h", 7200.0),
            ("1d", 86400.0),
            ("1.5s", 1.5),
            ("10", 10.0),
            (3, 3.0),
            (0.5, 0.5),
        ],
    )
    def test_accepted_durations(self, value: object, expected: float) -> None:
        """Durations accept seconds and the units s, ms, m, h and d."""
        result = duration(value)
        assert result == expected
        assert type(result) is float

    @pytest.mark.parametrize("value", ["1w", "-5s", "soon", "5 minutes"])
    def test_bad_duration_string(self, value: str) -> None:
        """Unknown units and negative strings are refused with examples."""
        with pytest.raises(ValueError, match="expected a duration such as 10"):
            duration(value)

    @pytest.mark.parametrize("value", [-1, -0.5, math.nan])
    def test_negative_or_nan_duration(self, value: float) -> None:
        """Negative and NaN durations are value errors."""
        with pytest.raises(ValueError, match="non-negative"):
            duration(value)

    def test_bool_duration_is_a_type_error(self) -> None:
        """True is not one second."""
        with pytest.raises(TypeError, match="got the bool True"):
            duration(True)


class TestBooleans:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("true", True),
            ("false", False),
            ("1", True),
            ("0", False),
            ("yes", True),
            ("no", False),
            ("on", True),
            ("off", False),
            (" TRUE ", True),
            ("Off", False),
            (True, True),
            (False, False),
            (1, True),
            (0, False),
        ],
    )
    def test_accepted_booleans(self, value: object, expected: bool) -> None:
        """Booleans accept true/false, 1/0, yes/no and on/off in any case."""
        assert boolean(value) is expected

    @pytest.mark.parametrize("value", ["maybe", "2", "", 2, None, 1.0])
    def test_other_values_are_refused(self, value: object) -> None:
        """Anything else is refused with the accepted spellings."""
        with pytest.raises(ValueError, match=r"expected a boolean \(true/false, 1/0, yes/no, on/off\)"):
            boolean(value)


class TestOpen:
    def test_open_parses_settings_from_the_query(self, tmp_path: Path) -> None:
        """Query settings are parsed with their types and applied to the cache."""
        query = "size_limit=1MiB&eviction_policy=least-recently-used&statistics=yes&cull_limit=3&timeout=250ms"
        with cachekit.open(sqlite_url(tmp_path / "c", query)) as cache:
            assert cache.size_limit == 2**20
            assert cache.eviction_policy == "least-recently-used"
            assert cache.statistics is True
            assert cache.cull_limit == 3
            assert cache.timeout == 0.25
            assert cache.store_name == "sqlite"
            assert cache.directory == str(tmp_path / "c")

    def test_open_keyword_arguments_add_settings(self, tmp_path: Path) -> None:
        """Keyword arguments to cachekit.open add settings and options."""
        with cachekit.open(sqlite_url(tmp_path / "c", "size_limit=2MiB"), tag_index=True, timeout=5) as cache:
            assert cache.size_limit == 2 * 2**20
            assert cache.tag_index is True
            assert cache.timeout == 5.0

    def test_relative_path(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``sqlite:rel/dir`` opens a directory relative to the working directory."""
        monkeypatch.chdir(tmp_path)
        with cachekit.open("sqlite:rel/dir") as cache:
            assert cache.directory == str(tmp_path / "rel" / "dir")
        assert (tmp_path / "rel" / "dir" / "cache.db").is_file()

    def test_percent_decoded_directory(self, tmp_path: Path) -> None:
        """A percent-encoded space in the path names a directory with a space."""
        with cachekit.open(f"sqlite://{tmp_path}/with%20space") as cache:
            assert cache.directory == str(tmp_path / "with space")
        assert (tmp_path / "with space").is_dir()

    def test_three_spellings_agree(self, tmp_path: Path) -> None:
        """cachekit.open(url), cachekit.open(bare path) and Cache(dir, store=...) open the same cache."""
        directory = tmp_path / "c"
        with cachekit.open(sqlite_url(directory)) as first:
            first.set("key", "from the url")
            assert first.store_name == "sqlite"
        with cachekit.open(str(directory)) as second:
            assert second.store_name == "sqlite"
            assert second.directory == str(directory)
            assert second["key"] == "from the url"
            second.set("key", "from the bare path")
        with cachekit.Cache(directory, store="sqlite") as third:
            assert third.store_name == "sqlite"
            assert third.directory == str(directory)
            assert third["key"] == "from the bare path"

    def test_bare_path_accepts_store_keyword(self, tmp_path: Path) -> None:
        """A bare path can name its store with store=."""
        with cachekit.open(str(tmp_path / "c"), store="sqlite") as cache:
            assert cache.store_name == "sqlite"

    def test_setting_in_url_and_keyword_is_an_error(self, tmp_path: Path) -> None:
        """A setting given both ways is refused, naming it, and nothing is created."""
        with pytest.raises(ConfigError, match="setting 'size_limit' is given both in the config string and as a"):
            cachekit.open(sqlite_url(tmp_path / "c", "size_limit=1MiB"), size_limit=2**21)
        assert not (tmp_path / "c").exists()

    def test_timeout_in_url_and_keyword_is_an_error(self, tmp_path: Path) -> None:
        """Options such as timeout are no exception to the no-silent-precedence rule."""
        with pytest.raises(ConfigError, match="setting 'timeout' is given both"):
            cachekit.open(sqlite_url(tmp_path / "c", "timeout=1s"), timeout=2)

    def test_store_keyword_with_scheme_is_an_error(self, tmp_path: Path) -> None:
        """store= next to a scheme is refused rather than one silently winning."""
        with pytest.raises(ConfigError, match="names the store 'sqlite'; do not pass store= as well"):
            cachekit.open(sqlite_url(tmp_path / "c"), store="sqlite")

    def test_cache_refuses_a_config_string(self, tmp_path: Path) -> None:
        """Cache('sqlite:///x') is refused with a hint to use cachekit.open."""
        text = sqlite_url(tmp_path / "c")
        with pytest.raises(ConfigError, match=r"is a config string, not a directory: use cachekit\.open\(") as raised:
            cachekit.Cache(text)
        assert repr(text) in str(raised.value)
        assert not (tmp_path / "c").exists()

    def test_unknown_scheme_suggests_and_lists(self, tmp_path: Path) -> None:
        """A misspelt scheme suggests the closest store and lists the installed ones."""
        with pytest.raises(UnknownPluginError, match=r"unknown store 'sqlit'\. Did you mean 'sqlite'\?") as raised:
            cachekit.open(f"sqlit://{tmp_path}/c")
        assert "Installed stores: lmdb, sqlite." in str(raised.value)
        assert not (tmp_path / "c").exists()

    def test_unknown_scheme_lists_run_time_stores(self, tmp_path: Path, other_store: str) -> None:
        """The listing of installed stores includes stores registered at run time."""
        with pytest.raises(UnknownPluginError, match=r"Installed stores: lmdb, other, sqlite\."):
            cachekit.open(f"nosuchstore://{tmp_path}/c")

    def test_unknown_parameter_is_named_with_valid_settings(self, tmp_path: Path) -> None:
        """An unknown setting is named and the valid ones (core, options and store) are listed."""
        with pytest.raises(
            ConfigError, match="unknown setting 'bogus' for the 'sqlite' store; valid settings: "
        ) as raised:
            cachekit.open(sqlite_url(tmp_path / "c", "bogus=1"))
        message = str(raised.value)
        for name in ("size_limit", "eviction_policy", "timeout", "secret_key", "sqlite_cache_size"):
            assert name in message
        assert not (tmp_path / "c").exists()

    def test_unknown_keyword_setting_is_named(self, tmp_path: Path) -> None:
        """Cache(dir, bogus=...) fails the same way as the config string."""
        with pytest.raises(ConfigError, match="unknown setting 'bogus' for the 'sqlite' store"):
            cachekit.Cache(tmp_path / "c", bogus=1)

    @pytest.mark.parametrize(
        ("query", "setting"),
        [
            ("size_limit=1G", "size_limit"),
            ("size_limit=-5", "size_limit"),
            ("statistics=maybe", "statistics"),
            ("cull_limit=many", "cull_limit"),
            ("timeout=1w", "timeout"),
            ("durability=extreme", "durability"),
            ("sqlite_mmap_size=lots", "sqlite_mmap_size"),
        ],
    )
    def test_malformed_value_names_the_setting(self, tmp_path: Path, query: str, setting: str) -> None:
        """A value that does not parse is an error naming its setting, before anything is created."""
        with pytest.raises(ConfigError, match=f"invalid value for setting '{setting}'"):
            cachekit.open(sqlite_url(tmp_path / "c", query))
        assert not (tmp_path / "c").exists()

    def test_unknown_eviction_policy_lists_valid_ones(self, tmp_path: Path) -> None:
        """An unknown eviction policy lists the installed ones."""
        with pytest.raises(UnknownPluginError, match="unknown eviction policy 'lru'") as raised:
            cachekit.Cache(tmp_path / "c", eviction_policy="lru")
        assert (
            "Installed eviction policies: least-frequently-used, least-recently-stored, least-recently-used, none."
            in str(raised.value)
        )
        assert not (tmp_path / "c").exists()

    def test_unknown_serializer_lists_valid_ones(self, tmp_path: Path) -> None:
        """An unknown serializer suggests the closest name and lists the installed ones."""
        with pytest.raises(
            UnknownPluginError, match=r"unknown serializer 'pickel'\. Did you mean 'pickle'\?"
        ) as raised:
            cachekit.open(sqlite_url(tmp_path / "c", "serializer=pickel"))
        assert "Installed serializers: json, msgpack, pickle, raw." in str(raised.value)

    def test_short_secret_key_is_refused(self, tmp_path: Path) -> None:
        """A secret_key shorter than 16 bytes is refused before anything is created."""
        with pytest.raises(ConfigError, match=r"secret_key.*at least 16 bytes"):
            cachekit.Cache(tmp_path / "c", secret_key="short")
        assert not (tmp_path / "c").exists()


class TestBadArguments:
    @pytest.mark.parametrize("timeout", [True, math.nan, -1, "soon", None])
    def test_bad_timeout_is_refused_before_anything_is_written(self, tmp_path: Path, timeout: object) -> None:
        """A bad timeout raises (a ValueError subclass naming it) and creates no directory."""
        with pytest.raises(ValueError, match="invalid value for setting 'timeout'"):
            cachekit.Cache(tmp_path / "c", timeout=timeout)  # type: ignore[arg-type]
        assert not (tmp_path / "c").exists()

    @pytest.mark.parametrize(
        ("expire", "error"),
        [(True, TypeError), (False, TypeError), ("10", TypeError), (math.nan, ValueError), (-1, ValueError)],
    )
    def test_bad_expire_is_refused_before_anything_is_written(
        self, tmp_path: Path, expire: object, error: type[Exception]
    ) -> None:
        """set, add and touch reject bad expire values without storing or changing anything."""
        with cachekit.Cache(tmp_path / "c") as cache:
            cache.set("present", "old")
            with pytest.raises(error, match="expire"):
                cache.set("key", "value", expire=expire)  # type: ignore[arg-type]
            with pytest.raises(error, match="expire"):
                cache.add("key", "value", expire=expire)  # type: ignore[arg-type]
            with pytest.raises(error, match="expire"):
                cache.touch("present", expire=expire)  # type: ignore[arg-type]
            assert "key" not in cache
            assert len(cache) == 1
            assert cache.get("present", expire_time=True) == ("old", None)


class TestPersistedSettings:
    def test_reopen_without_settings_gets_persisted_values(self, tmp_path: Path) -> None:
        """Settings given at creation come back when the cache is reopened without them."""
        directory = tmp_path / "c"
        query = "size_limit=1MiB&eviction_policy=least-frequently-used&statistics=on&cull_limit=4&tag_index=true"
        with cachekit.open(sqlite_url(directory, query)):
            pass
        with cachekit.Cache(directory) as cache:
            assert cache.size_limit == 2**20
            assert cache.eviction_policy == "least-frequently-used"
            assert cache.statistics is True
            assert cache.cull_limit == 4
            assert cache.tag_index is True

    def test_reopen_with_a_changed_setting_applies_and_persists_it(self, tmp_path: Path) -> None:
        """A different safe setting on reopen applies, and later opens see it."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, size_limit="1MiB"):
            pass
        with cachekit.Cache(directory, size_limit="2MiB") as cache:
            assert cache.size_limit == 2 * 2**20
        with cachekit.Cache(directory) as cache:
            assert cache.size_limit == 2 * 2**20

    def test_defaults_when_nothing_is_given(self, tmp_path: Path) -> None:
        """A new cache has python-diskcache's defaults."""
        with cachekit.Cache(tmp_path / "c") as cache:
            assert cache.size_limit == 2**30
            assert cache.cull_limit == 10
            assert cache.eviction_policy == "least-recently-stored"
            assert cache.statistics is False
            assert cache.serializer == "pickle"
            assert cache.timeout == 60.0

    def test_store_tuning_settings_apply_to_one_open(self, tmp_path: Path) -> None:
        """Engine tuning settings are not persisted: a reopen without them gets the default."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, sqlite_cache_size=100) as cache:
            assert cache.sqlite_cache_size == 100
        with cachekit.Cache(directory) as cache:
            assert cache.sqlite_cache_size == 2**13

    def test_unknown_attribute_is_an_attribute_error(self, tmp_path: Path) -> None:
        """Attributes that are not settings raise AttributeError naming them."""
        with cachekit.Cache(tmp_path / "c") as cache, pytest.raises(AttributeError, match="no attribute 'nonsense'"):
            _ = cache.nonsense


class TestStoreChoice:
    def test_marker_records_the_store(self, tmp_path: Path) -> None:
        """A new directory records the store that created it."""
        with cachekit.Cache(tmp_path / "c"):
            pass
        assert marker_store(tmp_path / "c") == "sqlite"

    def test_reopening_with_another_store_is_a_clear_error(self, tmp_path: Path, other_store: str) -> None:
        """Naming a different store than the one that created the directory is refused, naming both."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, store="sqlite") as cache:
            cache.set("key", 1)
        with pytest.raises(ConfigError, match="was created with the 'sqlite' store, not 'other'") as raised:
            cachekit.open(f"other://{directory}")
        assert "store='sqlite'" in str(raised.value)
        with cachekit.Cache(directory) as cache:
            assert cache["key"] == 1

    def test_bare_path_reopens_with_the_creating_store(self, tmp_path: Path, other_store: str) -> None:
        """A bare path on a directory made by another store reopens with that store."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, store="other") as cache:
            cache.set("key", "value")
        assert marker_store(directory) == "other"
        with cachekit.open(str(directory)) as cache:
            assert cache.store_name == "other"
            assert type(cache.store) is OtherStore
            assert cache["key"] == "value"

    def test_bare_path_reopen_accepts_the_creating_stores_settings(self, tmp_path: Path, other_store: str) -> None:
        """Settings of the store that created the directory are accepted on a bare-path reopen."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory, store="other"):
            pass
        with cachekit.Cache(directory, other_knob=5) as cache:
            assert cache.store_name == "other"
            assert cache.other_knob == 5

    def test_environment_picks_the_store_for_a_bare_path(
        self, tmp_path: Path, other_store: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CACHEKIT_DEFAULT_STORE chooses the store a new bare path opens with."""
        monkeypatch.setenv("CACHEKIT_DEFAULT_STORE", "other")
        with cachekit.open(str(tmp_path / "a")) as cache:
            assert cache.store_name == "other"
        with cachekit.Cache(tmp_path / "b") as cache:
            assert cache.store_name == "other"
        assert marker_store(tmp_path / "a") == "other"
        with cachekit.open(sqlite_url(tmp_path / "c")) as cache:
            assert cache.store_name == "sqlite"

    def test_blank_environment_means_sqlite(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A blank CACHEKIT_DEFAULT_STORE falls back to sqlite."""
        monkeypatch.setenv("CACHEKIT_DEFAULT_STORE", "  ")
        with cachekit.Cache(tmp_path / "c") as cache:
            assert cache.store_name == "sqlite"

    def test_unknown_store_in_environment_is_reported(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An unknown CACHEKIT_DEFAULT_STORE fails for a new bare path, naming it."""
        monkeypatch.setenv("CACHEKIT_DEFAULT_STORE", "nosuchstore")
        with pytest.raises(UnknownPluginError, match="unknown store 'nosuchstore'"):
            cachekit.Cache(tmp_path / "c")

    def test_environment_does_not_block_an_existing_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An existing directory reopens with its own store whatever CACHEKIT_DEFAULT_STORE names."""
        directory = tmp_path / "c"
        with cachekit.Cache(directory) as cache:
            cache.set("key", 1)
        monkeypatch.setenv("CACHEKIT_DEFAULT_STORE", "nosuchstore")
        with cachekit.Cache(directory) as cache:
            assert cache.store_name == "sqlite"
            assert cache["key"] == 1

    def test_store_must_be_a_name(self, tmp_path: Path) -> None:
        """store= must be a string."""
        with pytest.raises(TypeError, match="store must be a store name"):
            cachekit.Cache(tmp_path / "c", store=cachekit_sqlite.SQLiteStore)  # type: ignore[arg-type]

    def test_directory_must_be_a_path(self) -> None:
        """A directory that is not a path is a TypeError."""
        with pytest.raises(TypeError, match="directory must be a path, got int"):
            cachekit.Cache(42)  # type: ignore[arg-type]

    def test_none_directory_makes_a_temporary_one(self) -> None:
        """Cache() with no directory creates a fresh private directory."""
        with cachekit.Cache() as cache:
            assert os.path.isdir(cache.directory)
            assert os.path.basename(cache.directory).startswith("cachekit-")

    def test_store_without_transactions_is_refused(self, tmp_path: Path) -> None:
        """A store that cannot do multi-operation transactions cannot back a Cache."""

        class NoTransactions(cachekit_sqlite.SQLiteStore):
            capabilities = cachekit.plugins.Capabilities(transactions=False)

        class Plugin:
            @cachekit.plugins.hookimpl
            def cachekit_stores(self) -> Mapping[str, object]:
                return {"no-transactions": NoTransactions}

        plugin = Plugin()
        cachekit.plugins.register(plugin)
        try:
            with pytest.raises(cachekit.UnsupportedOperation, match="'no-transactions' store does not support"):
                cachekit.Cache(tmp_path / "c", store="no-transactions")
        finally:
            cachekit.plugins.unregister(plugin)
        assert not (tmp_path / "c").exists()


def test_errors_are_value_errors() -> None:
    """ConfigError and UnknownPluginError are ValueErrors (and LookupError), PluginError is not."""
    assert issubclass(ConfigError, ValueError)
    assert issubclass(UnknownPluginError, ConfigError)
    assert issubclass(UnknownPluginError, LookupError)
    assert not issubclass(PluginError, ValueError)
