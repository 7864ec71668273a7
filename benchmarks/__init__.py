"""Benchmarks of cachekit against python-diskcache and bare sqlite3 and LMDB floors (``python -m benchmarks``)."""
