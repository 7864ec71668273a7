"""``python -m benchmarks [latency|mixed|django] [options]``: run one benchmark (the latency one by default).

``python -m benchmarks [options]`` and ``python -m benchmarks latency
[options]`` run the per-operation latency benchmark (``latency.py``);
``python -m benchmarks mixed [options]`` runs the multi-process mixed
workload (``mixed.py``); ``python -m benchmarks django [options]`` runs
that workload on Django cache backends (``django_backends.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["collections"]:
        from . import collections_throughput

        return collections_throughput.main(arguments[1:])
    if arguments[:1] == ["mixed"]:
        from . import mixed

        return mixed.main(arguments[1:])
    if arguments[:1] == ["django"]:
        from . import django_backends

        return django_backends.main(arguments[1:])
    from . import latency

    if arguments[:1] == ["latency"]:
        arguments = arguments[1:]
    return latency.main(arguments)


if __name__ == "__main__":
    sys.exit(main())
