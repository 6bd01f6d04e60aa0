"""What a test does when a service it needs (PostgreSQL, an emulator) cannot be had here."""

from __future__ import annotations

import os

import pytest


def unavailable(what: str, reason: str) -> None:
    """Skips the test with the reason, or fails it when ``CI`` is set (CI must run it)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI and unavailable: {reason}", pytrace=False)
    pytest.skip(f"{what} unavailable: {reason}")
