"""Customer identifiers made ready for an ad platform's customer list: normalized, then SHA-256.

Each platform documents its own normalization (:data:`PLATFORMS`). Emails, everywhere: surrounding
whitespace trimmed, lower-cased. Campaign Manager 360 also removes the dots of the local part of
``gmail.com`` / ``googlemail.com`` addresses; the others do not (a dot there would not match).
Phones are parsed by ``phonenumbers`` (a number without a country code takes the default region's)
and written as E.164: with the ``+`` for Google and Campaign Manager 360, digits only for Meta
(country code first, so no leading zero). A value that cannot be read is left out and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import phonenumbers
import pyarrow as pa

from ..exceptions import ConfigurationError
from .hints import did_you_mean


@dataclass(frozen=True)
class Platform:
    """What one platform's customer list expects: its column headers and normalization rules."""

    name: str
    email_header: str
    phone_header: str
    phone_plus: bool
    gmail_dots: bool = False


PLATFORMS: dict[str, Platform] = {
    # Customer Match file headers (Google Ads); Display & Video 360 takes the same hashes
    "google": Platform("google", "Email", "Phone", phone_plus=True),
    # Custom Audiences customer list headers
    "meta": Platform("meta", "email", "phone", phone_plus=False),
    # the userIdentifiers fields of Campaign Manager 360's API
    "campaign_manager_360": Platform(
        "campaign_manager_360", "hashedEmail", "hashedPhoneNumber", phone_plus=True, gmail_dots=True
    ),
}

GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def platform(name: str) -> Platform:
    """The platform called ``name``, or a :class:`ConfigurationError` listing the known ones."""
    if name not in PLATFORMS:
        raise ConfigurationError(
            f"platform {name!r} is not one of {', '.join(PLATFORMS)}{did_you_mean(name, PLATFORMS)}"
        )
    return PLATFORMS[name]


def phone_region(region: str | None) -> str | None:
    """A default region as ``phonenumbers`` names it (ISO 3166 alpha-2, upper case), checked."""
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigurationError(
            f"phone region {region!r} is not a region code like US, GB or FR"
            f"{did_you_mean(code, sorted(phonenumbers.SUPPORTED_REGIONS))}"
        )
    return code


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 text, as lower-case hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_email(value: str, target: Platform) -> str | None:
    """The address as ``target`` hashes it, or None when it is not an address (no single ``@``
    between a local part and a domain)."""
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain or any(c.isspace() for c in email):
        return None
    if target.gmail_dots and domain in GMAIL_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def normalize_phone(value: str, target: Platform, region: str | None) -> str | None:
    """The number as ``target`` hashes it (E.164, with or without ``+``), or None when it cannot be
    parsed or its length is impossible for its country. Without a ``+`` the number takes the
    country code of ``region``; with no region it cannot be read."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if target.phone_plus else e164.lstrip("+")


@dataclass
class HashedIdentifiers:
    """A hashed customer list and what was left out of it."""

    table: pa.Table
    # non-empty values that could not be read (left out of the row; the row stays if it has another)
    unreadable_emails: int = 0
    unreadable_phones: int = 0
    # customers left out because none of their identifiers could be used
    no_identifier: int = 0


def hash_identifiers(
    customers: pa.Table,
    target: Platform,
    email_column: str | None,
    phone_column: str | None,
    region: str | None,
    include_user_id: bool = False,
) -> HashedIdentifiers:
    """One row per customer with at least one usable identifier: the hashes under ``target``'s
    headers (and ``user_id`` first when asked), nothing else from ``customers``."""
    columns: dict[str, list[str | None]] = {}
    unreadable = {"email": 0, "phone": 0}
    for kind, column, header in (("email", email_column, target.email_header),
                                 ("phone", phone_column, target.phone_header)):
        if column is None:
            continue
        hashes: list[str | None] = []
        for value in _as_text(customers[column]):
            if value is None or not value.strip():
                hashes.append(None)
                continue
            normalized = (normalize_email(value, target) if kind == "email"
                          else normalize_phone(value, target, region))
            if normalized is None:
                unreadable[kind] += 1
            hashes.append(None if normalized is None else sha256_hex(normalized))
        columns[header] = hashes
    usable = [any(values[i] is not None for values in columns.values()) for i in range(customers.num_rows)]
    data = {}
    if include_user_id:
        data["user_id"] = pa.array([u for u, keep in zip(customers["user_id"].to_pylist(), usable) if keep], pa.string())
    for header, values in columns.items():
        data[header] = pa.array([v for v, keep in zip(values, usable) if keep], pa.string())
    return HashedIdentifiers(
        pa.table(data), unreadable["email"], unreadable["phone"], usable.count(False)
    )


def _as_text(values: pa.ChunkedArray) -> list[str | None]:
    """Values as text; a whole float (a phone a CSV reader took for a number) without its ``.0``."""
    out: list[str | None] = []
    for value in values.to_pylist():
        if value is None:
            out.append(None)
        elif isinstance(value, float) and value.is_integer():
            out.append(str(int(value)))
        else:
            out.append(str(value))
    return out
