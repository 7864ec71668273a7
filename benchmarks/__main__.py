"""``python -m benchmarks [latency|mixed|django|collections|zipf|cold-open|all] [options]``: run benchmarks.

- ``python -m benchmarks [options]`` and ``python -m benchmarks latency
  [options]``: the per-operation latency benchmark (``latency.py``);
- ``python -m benchmarks mixed [options]``: the multi-process mixed
  workload (``mixed.py``);
- ``python -m benchmarks django [options]``: that workload on Django cache
  backends (``django_backends.py``);
- ``python -m benchmarks collections [options]``: FanoutCache and Deque
  throughput (``collections_throughput.py``);
- ``python -m benchmarks zipf [options]``: hit ratio of every store and
  eviction policy under a Zipf trace, beside exact LRU, LFU and FIFO
  simulations (``zipf.py``);
- ``python -m benchmarks cold-open [options]``: import, open and first get
  in a fresh Python process (``cold_open.py``);
- ``python -m benchmarks all [--quick] [--out DIR]``: latency, mixed (1, 2,
  4, 8 processes), zipf and cold-open in one go, with ``results.json``,
  ``results.md``, PNG plots and the issue's targets (``suite.py``).

``python -m benchmarks COMMAND --help`` describes each one's options.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command, rest = arguments[:1], arguments[1:]
    if command == ["collections"]:
        from . import collections_throughput

        return collections_throughput.main(rest)
    if command == ["mixed"]:
        from . import mixed

        return mixed.main(rest)
    if command == ["django"]:
        from . import django_backends

        return django_backends.main(rest)
    if command == ["zipf"]:
        from . import zipf

        return zipf.main(rest)
    if command == ["cold-open"]:
        from . import cold_open

        return cold_open.main(rest)
    if command == ["all"]:
        from . import suite

        return suite.main(rest)
    from . import latency

    if command == ["latency"]:
        arguments = rest
    return latency.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
