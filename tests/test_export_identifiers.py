"""Identifiers for ad platforms: each platform's normalization, SHA-256, and the issue's test vectors."""

from __future__ import annotations

import pyarrow as pa
import pytest

from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.segments.identifiers import (
    PLATFORMS, hash_identifiers, normalize_email, normalize_phone, phone_region, platform, sha256_hex,
)

GOOGLE, META, CM360 = PLATFORMS["google"], PLATFORMS["meta"], PLATFORMS["campaign_manager_360"]


def test_the_published_test_vectors():
    assert sha256_hex("test@example.com") == "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
    assert normalize_email(" John.Doe@Gmail.com ", CM360) == "johndoe@gmail.com"
    assert sha256_hex("johndoe@gmail.com") == "06a240d11cc201676da976f7b49341181fd180da37cbe40a77432c0a366c80c3"
    assert normalize_phone("+1 (650) 555-1234", GOOGLE, None) == "+16505551234"
    assert sha256_hex("+16505551234") == "a2996076d3ad4af5dc818b908b3d8e354f26ededf7df0e0aa6ac354143805ee0"
    assert normalize_phone("+1 (650) 555-1234", META, None) == "16505551234"
    assert sha256_hex("16505551234") == "6069d14bf122fdfd931dc7beb58e5dfbba395b1faf05bdcd42d12358d63d8599"


def test_the_gmail_dot_rule_applies_only_where_the_platform_documents_it():
    assert normalize_email(" John.Doe@Gmail.com ", GOOGLE) == "john.doe@gmail.com"
    assert normalize_email(" John.Doe@Gmail.com ", META) == "john.doe@gmail.com"
    assert normalize_email("a.b.c@googlemail.com", CM360) == "abc@googlemail.com"
    assert normalize_email("a.b@example.com", CM360) == "a.b@example.com"


@pytest.mark.parametrize("value", ["no-at-sign", "@example.com", "x@", "a@b@c", "a b@example.com"])
def test_values_that_are_not_addresses(value):
    assert normalize_email(value, GOOGLE) is None


def test_phones_take_the_default_region_and_meta_drops_the_plus_and_leading_zeros():
    assert normalize_phone("(650) 555-1234", GOOGLE, "US") == "+16505551234"
    assert normalize_phone("020 7946 0958", META, "GB") == "442079460958"  # the national 0 goes
    assert normalize_phone("0044 20 7946 0958", META, "GB") == "442079460958"
    assert normalize_phone("(650) 555-1234", GOOGLE, None) is None  # no country code, no region
    assert normalize_phone("call me", GOOGLE, "US") is None
    assert normalize_phone("12", GOOGLE, "US") is None  # parsed, but no US number is that short


def test_unknown_platform_and_region_are_refused_with_a_hint():
    with pytest.raises(ConfigurationError, match="did you mean 'google'"):
        platform("gogle")
    assert phone_region(" us ") == "US"
    with pytest.raises(ConfigurationError, match="not a region code"):
        phone_region("USA")


def test_a_hashed_list_holds_only_hashes_and_counts_what_it_left_out():
    customers = pa.table({
        "user_id": ["u1", "u2", "u3", "u4"],
        "email": [" Test@Example.com", None, "broken", ""],
        "phone": [None, "+1 (650) 555-1234", "12", "(650) 555-1234"],
        "name": ["A", "B", "C", "D"],
    })
    hashed = hash_identifiers(customers, GOOGLE, "email", "phone", "US")
    assert hashed.table.column_names == ["Email", "Phone"]
    assert hashed.table.to_pylist() == [
        {"Email": sha256_hex("test@example.com"), "Phone": None},
        {"Email": None, "Phone": sha256_hex("+16505551234")},
        {"Email": None, "Phone": sha256_hex("+16505551234")},
    ]
    assert (hashed.unreadable_emails, hashed.unreadable_phones, hashed.no_identifier) == (1, 1, 1)
    # a phone column a CSV reader took for numbers
    floats = hash_identifiers(pa.table({"user_id": ["u1"], "phone": [6505551234.0]}), GOOGLE, None, "phone", "US")
    assert floats.table["Phone"].to_pylist() == [sha256_hex("+16505551234")]
    with_ids = hash_identifiers(customers, META, "email", None, None, include_user_id=True)
    assert with_ids.table.column_names == ["user_id", "email"] and with_ids.table["user_id"].to_pylist() == ["u1"]
