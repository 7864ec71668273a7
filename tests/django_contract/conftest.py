"""This folder holds no pytest tests: ``tests/test_django_contract.py`` runs it through Django's own runner.

``run.py`` is a script, and ``cachekit_contract/`` only imports inside Django's test
suite (it needs Django's ``cache`` test app), so pytest must not import either, even
for ``--doctest-modules``.
"""

collect_ignore = ["run.py", "cachekit_contract"]
