"""Finding the installed entry points of a group, without importing ``importlib.metadata``.

Opening the first cache of a process looks up the ``cachekit`` entry-point
group.  ``importlib.metadata`` answers that correctly but costs 10 to 20 ms
on a cold start (it imports ``email``, ``zipfile``, ``csv`` and more), which
would be most of a new process's time to open a cache and read from it.
The common case is simple: distributions installed as ``*.dist-info`` or
``*.egg-info`` directories in the directories of ``sys.path``.  This module
reads those ``entry_points.txt`` files directly, with the same rules:

- ``sys.path`` is searched in order and the first distribution of a given
  (normalized) name wins, as ``importlib.metadata.distributions()`` does;
- ``entry_points.txt`` is INI-like: ``[group]`` sections of ``name = value``
  lines, blank lines and ``#`` comments ignored.

Anything else (a zip file on ``sys.path``, or an import hook that provides
its own distributions) falls back to ``importlib.metadata`` itself.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any, NamedTuple

__all__ = ["FoundEntryPoint", "entry_points"]


class FoundEntryPoint(NamedTuple):  # not a dataclass: building one costs a millisecond at first open
    """One entry point: its ``name``, its ``module:attribute`` value and where it comes from."""

    name: str
    value: str
    distribution: str | None
    version: str | None

    def load(self) -> Any:
        """Import the module and return the attribute the value names (the module without one)."""
        module_name, _, attribute = self.value.partition("[")[0].partition(":")  # "[extras]" name no code
        module = importlib.import_module(module_name.strip())
        result: Any = module
        for part in attribute.strip().split(".") if attribute.strip() else ():
            result = getattr(result, part)
        return result


_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def entry_points(group: str) -> list[FoundEntryPoint]:
    """Every installed entry point of ``group``, in ``sys.path`` order."""
    directories = _plain_path_directories()
    if directories is None:
        return _from_importlib_metadata(group)
    found: list[FoundEntryPoint] = []
    seen: set[str] = set()
    for directory in directories:
        try:
            names = os.listdir(directory)
        except OSError:  # missing or unreadable: importlib.metadata skips it too
            continue
        for name in sorted(names):
            if not name.endswith(_METADATA_SUFFIXES):
                continue
            project = _normalize(name.rpartition(".")[0].split("-", 1)[0])
            if project in seen:
                continue
            seen.add(project)
            metadata_directory = os.path.join(directory, name)
            try:
                with open(os.path.join(metadata_directory, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:  # no entry points (or a PKG-INFO file named *.egg-info)
                continue
            if f"[{group}]" not in text:
                continue
            entries = _section(text, group)
            if entries:
                distribution, version = _name_and_version(metadata_directory, name)
                found.extend(FoundEntryPoint(key, value, distribution, version) for key, value in entries)
    return found


def _plain_path_directories() -> list[str] | None:
    """``sys.path`` as directories, or ``None`` when something there needs ``importlib.metadata``."""
    import importlib.machinery

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder:
            return None  # an import hook with distributions of its own
    directories: list[str] = []
    for entry in sys.path:
        path = entry or "."
        if os.path.isdir(path):
            directories.append(path)
        elif os.path.exists(path):
            return None  # a zip file (or something else a path hook may read)
    return directories


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _section(text: str, group: str) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    current: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if current == group:
            key, separator, value = line.partition("=")
            if separator:
                entries.append((key.strip(), value.strip()))
    return entries


def _name_and_version(metadata_directory: str, directory_name: str) -> tuple[str | None, str | None]:
    """The ``Name`` and ``Version`` headers of the distribution's metadata file."""
    file_name = "METADATA" if directory_name.endswith(".dist-info") else "PKG-INFO"
    name: str | None = None
    version: str | None = None
    try:
        with open(os.path.join(metadata_directory, file_name), encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    break  # the headers end at the first blank line
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
    except OSError:
        pass
    return name, version


def _from_importlib_metadata(group: str) -> list[FoundEntryPoint]:
    import importlib.metadata

    return [
        FoundEntryPoint(
            entry_point.name,
            entry_point.value,
            entry_point.dist.name if entry_point.dist is not None else None,
            entry_point.dist.version if entry_point.dist is not None else None,
        )
        for entry_point in importlib.metadata.entry_points(group=group)
    ]
