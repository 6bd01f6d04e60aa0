"""How the CLI prints numbers in its tables."""

from __future__ import annotations

from algolia_profiles_source.cli.common import cell


def test_a_small_share_keeps_its_significant_digits():
    assert cell(146 / 1_000_000) == "0.000146"  # was printed as 0
    assert cell(0.5) == "0.5" and cell(0.12345) == "0.123" and cell(0.0) == "0"
    assert cell(1234.5) == "1,234.50" and cell(1_000_000) == "1,000,000" and cell(None) == ""
