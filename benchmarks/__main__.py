"""``python -m benchmarks``: the per-operation latency benchmark."""

import sys

from .latency import main

sys.exit(main())
