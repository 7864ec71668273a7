"""The three interfaces a plugin implements: :class:`Store`, :class:`Serializer`
and :class:`EvictionPolicy`, with the small value types they exchange.

Everything a plugin author needs is in this module; nothing here imports the
rest of cachekit.  The data path reads in one direction:
``Cache`` -> policy and serializer -> ``Store`` -> engine.  A store deals in
bytes and numbers only: keys, values and tags arrive already encoded.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

__all__ = [
    "RANK_FIELDS",
    "Access",
    "Capabilities",
    "Entry",
    "EvictionPolicy",
    "Found",
    "Order",
    "Serializer",
    "Setting",
    "Store",
    "StoreConfig",
    "Totals",
]

#: Entry fields an eviction policy may rank on (all are never ``None``).
RANK_FIELDS = ("store_time", "access_time", "access_count", "size")


class Entry(NamedTuple):
    """One cache entry as a store keeps it.

    Exactly one of ``value`` and ``filename`` is set: small payloads live
    inline, large ones in a value file that the core writes and removes.
    """

    key: bytes
    """The encoded key (see the key codec); stores compare keys as raw bytes."""
    value: bytes | None
    """The inline payload, or ``None`` when the payload lives in a value file."""
    filename: str | None
    """Path of the value file relative to the cache directory, or ``None``."""
    serializer: str
    """How the payload decodes: ``bytes``, ``str``, ``int``, ``float`` or a serializer name."""
    size: int
    """Bytes the entry counts for in the cache's volume: key plus payload."""
    store_time: float
    """When the entry was last set (seconds since the epoch)."""
    expire_time: float | None
    """When the entry expires, or ``None`` for never."""
    access_time: float
    """When the entry was last read (only kept current by policies that record it)."""
    access_count: int
    """How often the entry was read (only kept current by policies that record it)."""
    tag: bytes | None
    """The encoded tag, or ``None``."""


@dataclass(slots=True)
class Totals:
    """Aggregates a store keeps current inside every write transaction (read-only by convention).

    Not frozen: every write builds one, to cull, and a frozen dataclass
    costs several times more to construct.
    """

    count: int
    """Number of entries, expired ones included."""
    volume: int
    """Sum of :attr:`Entry.size` over all entries."""
    next_expiry: float | None
    """The earliest expire time of any entry, or ``None`` if no entry expires.

    Every write checks it, so that finding nothing to expire costs no scan."""


Found = tuple[bytes | None, str | None, str, float | None]
"""What a plain read needs of an entry, the answer of :meth:`Store.lookup`:
``(value, filename, serializer, expire_time)``.  A plain tuple, because the
read path unpacks it millions of times."""


class Order(enum.Enum):
    """The orders in which :meth:`Store.scan` can walk entries.

    Ties are always broken by insertion order, so every order is total.
    """

    INSERTION = "insertion"
    """Order of first insertion; replacing a value keeps an entry's place."""
    EVICTION = "eviction"
    """The eviction policy's rank, first to leave first."""
    EXPIRY = "expiry"
    """Entries that have an expire time, soonest first."""
    KEY = "key"
    """Encoded keys as unsigned bytes; used for queues (push/pull) and ``iterkeys``."""


class Access(enum.Flag):
    """What a read must record for an eviction policy to work."""

    NOTHING = 0
    TIME = enum.auto()
    """Set ``access_time`` to the time of the read."""
    COUNT = enum.auto()
    """Add one to ``access_count``."""


@dataclass(frozen=True)
class Capabilities:
    """What a store can do, so the core can adapt or refuse with a clear error."""

    transactions: bool = True
    """``write()`` makes several operations atomic and isolated across processes."""
    value_files: bool = True
    """Entries may reference value files; without it every payload is stored inline."""
    ordered_scans: bool = True
    """``scan()`` supports every :class:`Order`; needed by culling, queues and ``iterkeys``."""
    exact_length: bool = True
    """``totals().count`` is exact rather than an estimate."""
    max_value_size: int | None = None
    """Largest inline payload in bytes, or ``None`` for no limit of the engine's own."""
    reads_may_write: bool = False
    """A read can change files on disk, so even a read-only user needs write access."""


@dataclass(frozen=True)
class Setting:
    """A setting a store or the core accepts, with its default and its parser.

    ``parse`` receives either a Python value (keyword arguments) or a string
    (config strings) and returns the validated value, raising ``ValueError``
    or ``TypeError`` with a message that says what is accepted.
    """

    default: Any
    parse: Callable[[object], Any]
    doc: str = ""
    persist: bool = True
    """Whether the value is saved in the cache directory and reused on reopen."""


@dataclass(frozen=True)
class StoreConfig:
    """Everything a store needs to open, already validated by the core."""

    directory: str
    """Absolute path of the cache directory; it exists and is owner-only."""
    timeout: float
    """Seconds to wait for the write lock before raising :class:`cachekit.Timeout`."""
    durability: str = "normal"
    """``normal``: survives the crash of any process.  ``full``: survives power loss too."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The store's own settings, validated against :attr:`Store.settings`."""


class Store(abc.ABC):
    """A storage engine: entries with metadata, ordered scans and transactions.

    A store is opened once per cache object and may be used from many
    threads; it must be safe after ``os.fork()`` in both parent and child.

    Operations outside a transaction are each atomic on their own.  Inside
    :meth:`write`, every call made *by the same thread* belongs to the
    transaction: it sees its own changes, and all of them commit or roll back
    together.  :meth:`write` is exclusive across threads and processes and
    raises :class:`cachekit.Timeout` when the lock is not granted within
    ``config.timeout``.  The core never nests transactions.

    Engine exceptions must not escape raw: translate them to
    :class:`cachekit.StoreError` subclasses (``Timeout``, ``StorageFull``,
    ``CorruptCache``) with the original chained.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()
    """What this store can do."""
    settings: ClassVar[Mapping[str, Setting]] = {}
    """Engine tuning settings this store accepts, by name."""

    @classmethod
    @abc.abstractmethod
    def open(cls, config: StoreConfig) -> Store:
        """Open (creating if needed) the store in ``config.directory``.

        Raise :class:`cachekit.CorruptCache` when the files there are damaged
        or foreign, naming the path.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release every resource; further use may reopen lazily or fail."""

    # -- transactions ---------------------------------------------------
    @abc.abstractmethod
    def read(self) -> AbstractContextManager[None]:
        """A read transaction: the calls inside see one consistent snapshot."""

    @abc.abstractmethod
    def write(self, timeout: float | None = None) -> AbstractContextManager[None]:
        """An exclusive write transaction (see the class docstring).

        ``timeout`` overrides ``config.timeout`` for this transaction only:
        the core passes ``0`` for background work (writing out statistics)
        that must never make a read wait.
        """

    # -- entries --------------------------------------------------------
    @abc.abstractmethod
    def get(self, key: bytes) -> Entry | None:
        """The entry stored under ``key``, expired or not, or ``None``."""

    def lookup(self, key: bytes) -> Found | None:
        """The fields a plain read needs, or ``None``; the hot path of ``Cache.get``.

        The default derives them from :meth:`get`; a store overrides it when
        fetching four fields is cheaper than fetching a whole entry.
        """
        entry = self.get(key)
        if entry is None:
            return None
        return entry.value, entry.filename, entry.serializer, entry.expire_time

    @abc.abstractmethod
    def put(self, entry: Entry) -> Entry | None:
        """Insert or replace ``entry`` and return the entry it replaced.

        A replaced entry keeps its insertion position.  Called inside
        :meth:`write`; totals change in the same transaction.
        """

    @abc.abstractmethod
    def update(self, key: bytes, changes: Mapping[str, Any]) -> bool:
        """Change metadata fields of an existing entry without touching its value.

        ``changes`` maps field names (``expire_time``, ``access_time``,
        ``access_count``, ``tag``) to new values.  Return whether the entry
        existed.  Called inside :meth:`write`.
        """

    @abc.abstractmethod
    def delete(self, key: bytes) -> Entry | None:
        """Remove the entry under ``key`` and return it, or ``None`` if absent.

        Called inside :meth:`write`; the core removes any value file after
        the commit.
        """

    @abc.abstractmethod
    def scan(
        self,
        order: Order,
        *,
        reverse: bool = False,
        start: bytes | None = None,
        stop: bytes | None = None,
        tag: bytes | None = None,
        expired_before: float | None = None,
        limit: int | None = None,
    ) -> Iterator[Entry]:
        """Walk entries in ``order`` (reversed if asked).

        ``start`` (inclusive) and ``stop`` (exclusive) bound the keys and
        apply to :attr:`Order.KEY`; ``tag`` keeps only entries with that tag;
        ``expired_before`` keeps only entries whose expire time is before
        it (with :attr:`Order.EXPIRY`); ``limit`` caps the number yielded.

        Outside a transaction the iterator may run while other writers
        change the store: it must not fail because of them, and it yields
        no key twice.
        """

    @abc.abstractmethod
    def totals(self) -> Totals:
        """Entry count and volume, consistent with the current transaction."""

    # -- settings, counters, indexes --------------------------------------
    @abc.abstractmethod
    def load_settings(self) -> dict[str, Any]:
        """The persisted settings (an empty dict for a new store)."""

    @abc.abstractmethod
    def save_settings(self, settings: Mapping[str, Any]) -> None:
        """Persist ``settings`` (merged over the existing ones), inside :meth:`write`."""

    @abc.abstractmethod
    def counters(self) -> dict[str, int]:
        """The persisted statistics counters by name (missing ones are zero)."""

    @abc.abstractmethod
    def add_counters(self, deltas: Mapping[str, int]) -> None:
        """Add ``deltas`` to the persisted counters, inside :meth:`write`."""

    @abc.abstractmethod
    def reset_counters(self, names: Iterator[str] | list[str]) -> None:
        """Set the named counters to zero, inside :meth:`write`."""

    @abc.abstractmethod
    def set_eviction_rank(self, rank: tuple[str, ...]) -> None:
        """Keep :attr:`Order.EVICTION` in ``rank`` order from now on.

        Called right after :meth:`open` and whenever the policy changes; a
        call that changes nothing must not write.  ``()`` means no policy.
        """

    @abc.abstractmethod
    def set_tag_index(self, enabled: bool) -> None:
        """Create or drop the index that speeds up lookups by tag.

        Called right after :meth:`open` and on ``create_tag_index`` /
        ``drop_tag_index``; a call that changes nothing must not write.
        """

    def reclaim(self) -> bool:
        """Give back disk space the engine holds, without adding data; return whether it did.

        Called outside any transaction when a removal failed with
        :class:`cachekit.StorageFull` even after the cache gave up its disk
        reserve (or had none); the core then tries the removal once more.  An
        engine with a log it can checkpoint and truncate does so here.  Must
        never lose a committed change.  The default does nothing.
        """
        return False

    @abc.abstractmethod
    def check(self, fix: bool) -> list[str]:
        """Verify the engine's own structures (and totals); return problems found.

        With ``fix``, repair what can be repaired.  Value files are checked by
        the core.
        """


class Serializer(abc.ABC):
    """Turns values into bytes and back.

    ``bytes``, ``str``, ``int`` and ``float`` values never reach a
    serializer: the core stores them natively.  A serializer sees the rest
    (and keys that are not ``str``, ``bytes``, numbers or tuples of them).
    """

    name: ClassVar[str]
    """The name under which the serializer is registered and recorded per entry."""

    @classmethod
    def create(cls, settings: Mapping[str, Any]) -> Serializer:
        """Build an instance from the cache's settings (the default ignores them)."""
        return cls()

    @abc.abstractmethod
    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise any exception if it cannot be encoded."""

    @abc.abstractmethod
    def loads(self, data: bytes) -> Any:
        """Decode bytes produced by :meth:`dumps`."""


class EvictionPolicy:
    """Which entries leave first when the cache is over its ``size_limit``.

    A policy is data, written once for every store: the fields it ranks on
    and what a read must record.  Stores keep an ordered index on ``rank``.
    """

    name: ClassVar[str]
    """The name users pass as ``eviction_policy``."""
    rank: ClassVar[tuple[str, ...]] = ()
    """Fields from :data:`RANK_FIELDS`, ascending; prefix one with ``-`` for
    descending.  The first entry in this order is evicted first; ``()`` means
    never evict for size (expired entries are still removed)."""
    records: ClassVar[Access] = Access.NOTHING
    """What each read must record so that ``rank`` stays meaningful."""
