"""Fixtures of the functional tests beyond tests/conftest.py: a real browser (browser_support)."""

from tests.browser_support import browser, live_server  # noqa: F401
