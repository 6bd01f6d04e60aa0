"""Audiences worth a second look before they ship: empty ones, and ones whose size jumped.

A build (and a plan) compares each audience's size with the last build's; the report does the same
over the build history.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable, Mapping

DEFAULT_SIZE_CHANGE = 0.5


def size_warnings(
    sizes: Iterable[Mapping[str, Any]], previous: Mapping[str, int], threshold: float = DEFAULT_SIZE_CHANGE
) -> list[str]:
    """One warning per audience of ``sizes`` (rows with ``segment`` and ``members``) that is empty,
    or whose size changed by more than ``threshold`` (0.5 = 50%) from ``previous`` (members per
    audience of the last build; an audience absent there is new and has no change)."""
    warnings = []
    for row in sizes:
        name, members = row["segment"], int(row["members"])
        before = previous.get(name)
        if members == 0:
            was = f" (it had {before:,} members)" if before else ""
            warnings.append(f"audience {name!r} is empty: nobody matches it{was}")
        elif before and abs(members - before) / before > threshold:
            change = (members - before) / before
            warnings.append(
                f"audience {name!r} changed size by {change:+.0%} since the last build ({before:,} -> {members:,}"
                f" members; warning threshold {threshold:.0%})"
            )
    return warnings
