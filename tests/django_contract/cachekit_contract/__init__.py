"""Django's generic cache-backend tests, applied to cachekit's Django backend on each store.

Only importable inside Django's own test suite: ``../run.py`` copies this
package into its ``cache`` test app and runs it there.
"""
