"""Benchmarks of cachekit against python-diskcache and a bare sqlite3 table (``python -m benchmarks``)."""
