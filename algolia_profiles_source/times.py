"""Instants as this package reads and writes them: RFC 3339 strings, UTC datetimes, seconds."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from .exceptions import ConfigurationError


def parse_datetime(value: Any, name: str) -> datetime | None:
    """Reads a datetime, a date or an RFC 3339 string; naive values are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ConfigurationError(
                f"{name} {value!r} is not an RFC 3339 date-time; write it like"
                " 2026-11-01T00:00:00Z (or pass a datetime)"
            ) from None
    else:
        raise ConfigurationError(f"{name} must be a datetime or an RFC 3339 string, got {type(value).__name__}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_rfc3339(value: datetime) -> str:
    """``2026-11-01T00:00:00Z`` or ``2026-11-01T00:00:00.123456Z`` (UTC)."""
    value = value.astimezone(timezone.utc)
    spec = "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return value.strftime(spec)


def seconds(value: Any, name: str) -> timedelta:
    """A non-negative number of seconds as a timedelta."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    if amount < 0:
        raise ConfigurationError(f"{name} must not be negative, got {value!r}")
    return timedelta(seconds=amount)
