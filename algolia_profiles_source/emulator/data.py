"""Deterministic synthetic Advanced Personalization profiles.

`SyntheticData(n_users, seed, now)` generates, eagerly but compactly, only what paging and date
filtering need: every user's ID and ``lastUpdatedAt`` (microseconds since the epoch). A full profile
is rendered on demand by `SyntheticData.render(index, user_id, last_updated_us)` with draws seeded
by ``(seed, index)``, so a million users fit in well under a gigabyte and the same seed always
yields the same profiles.

The catalogue is an e-commerce shop with personas whose interests correlate (campers like
``category:Camping`` and outdoor brands, runners like running shoes, parents like kids products...).
Values deliberately contain commas, colons, quotes, ``>`` hierarchies and non-Latin scripts; user IDs
use every character Algolia allows (``[A-Za-z0-9=+/_-]``, 1..129 characters). Profiles are recomputed
in daily batches, so many users share one ``lastUpdatedAt``; a minority carry an individual real-time
timestamp with micro-seconds. The ``large_batches`` shape adds full recomputes: a quarter, a sixth and
a tenth of all profiles share each of three timestamps (`LARGE_BATCH_SHARES`), as after an
application recomputes every profile at once.
"""

from __future__ import annotations

import base64
import bisect
import random
from array import array
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

INDICES: tuple[str, ...] = ("products_en_US", "products_fr_FR", "products_zh_CN")
"""Index names of the synthetic application."""

EN, FR, ZH = INDICES

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "category": (EN, FR, ZH),
    "brand": (EN, FR, ZH),
    "categories.lvl0": (EN, FR),
    "categories.lvl1": (EN, FR),
    "color": (EN, ZH),
    "price_range": (EN,),
    "collection": (FR, ZH),
    "size": (EN, FR),
}
"""Affinity attribute (facet) name -> indices it is configured on."""

# Persona -> (weight, {attribute: [values, most likely first]}). Every attribute stays far below
# Algolia's limit of 100 values.
PERSONAS: dict[str, tuple[int, dict[str, list[str]]]] = {
    "camper": (18, {
        "category": ["Camping", "Hiking", "Camping", "Climbing", "Outdoor Cooking"],
        "brand": ["The North Face", "Patagonia", "Coleman", "MSR", "Black Diamond", "Ñandú",
                  "Jack Wolfskin", "\"Pro\" Series"],
        "categories.lvl0": ["Outdoor", "Sports"],
        "categories.lvl1": ["Outdoor > Camping", "Outdoor > Hiking",
                            "Outdoor > Camping > Tents, Tarps & Shelters",
                            "Outdoor > Camping > Sleeping Bags"],
        "color": ["green", "khaki", "orange", "black"],
        "price_range": ["50 - 100", "100 - 200", "200 - 500"],
        "collection": ["户外", "Кемпинг", "Été: randonnée", "Montagne"],
        "size": ["M", "L", "2-person", "4-person"],
    }),
    "runner": (14, {
        "category": ["Running", "Running Shoes", "Fitness", "Hiking"],
        "brand": ["Nike", "Adidas", "ASICS", "Brooks", "Hoka", "Saucony", "New Balance"],
        "categories.lvl0": ["Sports", "Shoes"],
        "categories.lvl1": ["Sports > Running", "Shoes > Running Shoes", "Sports > Fitness"],
        "color": ["black", "white", "neon yellow", "blue"],
        "price_range": ["50 - 100", "100 - 200"],
        "collection": ["跑步", "Бег", "Trail: 42 km"],
        "size": ["42", "43", "44", "M", "S"],
    }),
    "parent": (14, {
        "category": ["Toys", "Baby", "Kids' Clothing", "Books", "Board Games"],
        "brand": ["LEGO", "Fisher-Price", "Hasbro", "Mattel", "Pampers", "Carter's"],
        "categories.lvl0": ["Kids", "Baby", "Toys"],
        "categories.lvl1": ["Kids > Toys", "Baby > Diapers, Wipes & Care",
                            "Toys > Star Wars: The Mandalorian", "Kids > Books"],
        "color": ["pink", "blue", "yellow", "multicolor"],
        "price_range": ["0 - 25", "25 - 50", "50 - 100"],
        "collection": ["儿童", "Детям", "Rentrée scolaire"],
        "size": ["3-6 months", "2T", "4T", "XS"],
    }),
    "fashion": (16, {
        "category": ["Jeans", "Dresses", "Shoes", "Bags", "Jackets", "Accessories"],
        "brand": ["Levi's", "Zara", "H&M", "Mango", "Uniqlo", "Gucci", "Calvin Klein"],
        "categories.lvl0": ["Women", "Men", "Shoes", "Accessories"],
        "categories.lvl1": ["Women > Dresses", "Men > Jeans", "Women > Bags, Purses & Wallets",
                            "Men > Jackets"],
        "color": ["black", "white", "red", "navy", "beige"],
        "price_range": ["25 - 50", "50 - 100", "100 - 200", "500+"],
        "collection": ["时尚", "Мода", "Printemps/Été", "Soldes: -50%", "العربية"],
        "size": ["XS", "S", "M", "L", "XL", "32/34"],
    }),
    "electronics": (14, {
        "category": ["Laptops", "Smartphones", "Headphones", "Cameras", "Gaming", "TV & Video"],
        "brand": ["Apple", "Samsung", "Sony", "Dell", "Lenovo", "Bose", "Nintendo",
                  "\"Pro\" Series"],
        "categories.lvl0": ["Electronics", "Computers", "Gaming"],
        "categories.lvl1": ["Electronics > Audio", "Computers > Laptops",
                            "Electronics > Cameras, Lenses & Drones", "Gaming > Consoles"],
        "color": ["black", "silver", "space gray", "white"],
        "price_range": ["100 - 200", "200 - 500", "500+"],
        "collection": ["电子产品", "Электроника", "Rentrée: high-tech"],
        "size": ["13\"", "15\"", "128 GB", "256 GB"],
    }),
    "home_garden": (14, {
        "category": ["Garden", "Kitchen", "Furniture", "Home Decor", "Tools", "Camping"],
        "brand": ["IKEA", "Bosch", "KitchenAid", "Weber", "Gardena", "Le Creuset"],
        "categories.lvl0": ["Home", "Garden", "Kitchen"],
        "categories.lvl1": ["Home > Furniture", "Garden > Grills, Smokers & Outdoor Cooking",
                            "Kitchen > Cookware", "Garden > Tools"],
        "color": ["white", "oak", "green", "gray"],
        "price_range": ["25 - 50", "50 - 100", "100 - 200", "200 - 500"],
        "collection": ["家居", "Дом и сад", "Jardin: printemps", "العربية"],
        "size": ["S", "M", "L", "King"],
    }),
    "beauty": (10, {
        "category": ["Skincare", "Makeup", "Fragrance", "Hair Care"],
        "brand": ["L'Oréal", "Clinique", "Dior", "The Ordinary", "Lancôme"],
        "categories.lvl0": ["Beauty"],
        "categories.lvl1": ["Beauty > Skincare", "Beauty > Makeup", "Beauty > Fragrance"],
        "color": ["nude", "red", "pink"],
        "price_range": ["0 - 25", "25 - 50", "50 - 100"],
        "collection": ["美妆", "Красота", "Noël: coffrets"],
        "size": ["30 ml", "50 ml", "100 ml"],
    }),
}

USER_TYPES = ("basic", "predictive", "realtime")
BATCH_SHAPES = ("daily", "large_batches")
# Shares of all profiles in the three full recomputes of the ``large_batches`` shape.
LARGE_BATCH_SHARES = (0.25, 0.15, 0.10)
REALTIME_SHARE = 0.1
DAY_US = 86_400 * 1_000_000
SPAN_DAYS = 90
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789=+/_-"


def _candidate_lists() -> tuple[list[str], list[tuple[int, ...]], list[list[tuple[str, str]]]]:
    """Flatten the personas into per-persona candidate (name, value) lists.

    Earlier values of an attribute appear more often, so each persona has favourite values.
    """
    names = list(PERSONAS)
    weights = [w for w, _ in PERSONAS.values()]
    cum = tuple(sum(weights[: i + 1]) for i in range(len(weights)))
    pools: list[list[tuple[str, str]]] = []
    for _, attrs in PERSONAS.values():
        pool: list[tuple[str, str]] = []
        for attr, values in attrs.items():
            for rank, value in enumerate(values):
                pool.extend([(attr, value)] * max(1, 4 - rank))
        pools.append(pool)
    return names, cum, pools


_PERSONA_NAMES, _PERSONA_CUM, _POOLS = _candidate_lists()
_CAMPER = _PERSONA_NAMES.index("camper")


@lru_cache(maxsize=1 << 16)
def format_us(us: int) -> str:
    """Format microseconds since the epoch as RFC 3339 UTC (``Z``; fraction only when non-zero)."""
    sec, frac = divmod(us, 1_000_000)
    text = datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:06d}Z" if frac else f"{text}Z"


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = dt - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """Aware UTC datetime of microseconds since the epoch."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


def _make_id(rng: random.Random, i: int) -> str:
    """One pseudonymous user ID; ``i`` makes the structured formats unique."""
    r = rng.random()
    if r < 0.25:
        return f"user_{i:06d}"
    if r < 0.55:  # Insights anonymous token: standard base64, so + / and = padding appear
        return "anon-" + base64.b64encode(rng.randbytes(rng.choice((7, 8, 10, 11)))).decode()
    if r < 0.75:  # urlsafe token: - and _
        return base64.urlsafe_b64encode(rng.randbytes(12)).decode()
    if r < 0.90:  # UUID-ish
        h = rng.randbytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if r < 0.9985:  # CRM-style ids with mixed case
        return "".join(rng.choices(_ID_ALPHABET, k=rng.randint(1, 24)))
    return "".join(rng.choices(_ID_ALPHABET, k=rng.randint(120, 129)))


class SyntheticData:
    """The generated population of one emulator.

    Attributes:
        ids: user IDs sorted lexicographically (Python ``str`` order).
        last_updated: ``array('q')`` of each sorted user's ``lastUpdatedAt`` in microseconds.
        source_index: ``array('l')`` of each sorted user's generation index (input of `render`).
        batches: sorted batch instants (microseconds) at which profiles were recomputed.
    """

    def __init__(self, n_users: int, seed: int, now: datetime, batch_shape: str = "daily") -> None:
        """Generate ``n_users`` IDs and timestamps spread over the 90 days before ``now``, in
        recompute batches of the given shape (one of `BATCH_SHAPES`)."""
        if n_users < 0:
            raise ValueError("n_users must be >= 0")
        if batch_shape not in BATCH_SHAPES:
            raise ValueError(f"batch_shape must be one of {', '.join(BATCH_SHAPES)}, got {batch_shape!r}")
        self.seed = seed
        self.now_us = to_us(now)
        rng = random.Random(seed)
        start_us = self.now_us - SPAN_DAYS * DAY_US
        # one recompute batch a day at a random time; about a third of them carry micro-seconds
        batches = []
        for day in range(SPAN_DAYS):
            t = start_us + day * DAY_US + rng.randrange(3_600, 82_800) * 1_000_000
            if rng.random() < 0.35:
                t += rng.randrange(1, 1_000_000)
            batches.append(min(t, self.now_us - 1_000_000))
        self.batches: list[int] = sorted(batches)
        # recent batches hold more users (older profiles were recomputed since)
        batch_weights = [1 + 2 * k / SPAN_DAYS for k in range(SPAN_DAYS)]
        batch_cum = [sum(batch_weights[: k + 1]) for k in range(SPAN_DAYS)]

        raw_ids: list[str] = []
        seen: set[str] = set()
        stamps = array("q")
        choices_b = rng.choices(range(SPAN_DAYS), cum_weights=batch_cum, k=n_users)
        # full recomputes (large_batches): weekly, the latest first; shares among batch profiles
        full = [self.batches[-1 - 7 * k] for k in range(len(LARGE_BATCH_SHARES))] if batch_shape != "daily" else []
        full_cum = [sum(LARGE_BATCH_SHARES[: k + 1]) / (1 - REALTIME_SHARE) for k in range(len(full))]
        for i in range(n_users):
            uid = _make_id(rng, i)
            while uid in seen:
                uid = _make_id(rng, i)
            seen.add(uid)
            raw_ids.append(uid)
            if rng.random() < REALTIME_SHARE:  # real-time update: an individual instant with micro-seconds
                stamps.append(rng.randrange(start_us, self.now_us))
            elif full and (k := bisect.bisect_right(full_cum, rng.random())) < len(full):
                stamps.append(full[k])
            else:
                stamps.append(self.batches[choices_b[i]])
        del seen
        order = sorted(range(n_users), key=raw_ids.__getitem__)
        self.ids: list[str] = [raw_ids[k] for k in order]
        self.last_updated = array("q", (stamps[k] for k in order))
        self.source_index = array("l", order)

    def render(self, index: int, user_id: str, last_updated_us: int) -> dict[str, Any]:
        """Render the profile of generation index ``index`` in exact API shape.

        The random draws are seeded by ``(seed, index)``; ``user_id`` is used as given, and
        ``last_updated_us`` is the profile's ``lastUpdatedAt`` and bounds every affinity's.
        """
        rng = random.Random(self.seed * 1_000_003 + index)
        profile: dict[str, Any] = {"userID": user_id}
        r = rng.random()
        if r < 0.1:
            pass  # older payloads have no "type"
        elif r < 0.7:
            profile["type"] = "basic"
        elif r < 0.93:
            profile["type"] = "predictive"
        else:
            profile["type"] = "realtime"
        profile["lastUpdatedAt"] = format_us(last_updated_us)
        profile["affinities"] = self._affinities(rng, last_updated_us)
        return profile

    def _affinities(self, rng: random.Random, last_us: int) -> list[dict[str, Any]]:
        r = rng.random()
        if r < 0.03:
            return []
        k = rng.randint(1, 4) if r < 0.08 else rng.randint(5, 20)
        primary = bisect.bisect_right(_PERSONA_CUM, rng.random() * _PERSONA_CUM[-1])
        picks: list[tuple[str, str]] = []
        if primary == _CAMPER and rng.random() < 0.9:
            picks.append(("category", "Camping"))
        secondary = rng.randrange(len(_POOLS)) if rng.random() < 0.4 else primary
        draws = rng.choices(_POOLS[primary], k=2 * k)
        if secondary != primary:
            draws[::3] = rng.choices(_POOLS[secondary], k=len(draws[::3]))
        for pair in draws:
            if len(picks) >= k:
                break
            if pair not in picks:
                picks.append(pair)
        # earlier batches this profile's affinities may come from (never after the profile itself)
        hi = bisect.bisect_right(self.batches, last_us)
        lo = max(0, hi - 30)
        out = []
        rand = rng.random  # plain floats are much cheaper than randint/randrange here
        batches = self.batches
        for name, value in picks:
            attr_indices = ATTRIBUTES[name]
            n_idx = len(attr_indices)
            indices = list(attr_indices) if n_idx == 1 or rand() < 0.75 else [
                attr_indices[int(rand() * n_idx)]]
            score: float | int = 1 + int(rand() * 20)
            if rand() < 0.06:  # the type allows decimals; a few scores have them
                score = min(19.5, score + (0.25, 0.5, 0.75)[int(rand() * 3)])
            ts = last_us if rand() < 0.6 or hi == lo else batches[lo + int(rand() * (hi - lo))]
            out.append({"name": name, "value": value, "indices": indices, "score": score,
                        "lastUpdatedAt": format_us(ts)})
        return out

    def config(self) -> dict[str, Any]:
        """The application's ``GET /2/config`` answer, consistent with the generated profiles."""
        stamp = format_us(self.batches[-1] if self.batches else self.now_us)
        created = format_us(self.now_us - 120 * DAY_US)
        events = {
            "viewDetails": [{"type": "view", "name": "Product Viewed"}],
            "viewListing": [{"type": "click", "name": "Product Clicked"}],
            "addToCart": [{"type": "conversion", "subtype": "addToCart", "name": "Added to Cart"}],
            "purchase": [{"type": "conversion", "subtype": "purchase", "name": "Order Completed"}],
        }
        return {
            "indices": [
                {
                    "index": index,
                    "affinities": [a for a, idx in ATTRIBUTES.items() if index in idx],
                    "source": {"type": "insights", "events": events},
                    "errors": [],
                    "warnings": [],
                    "lastUpdatedAt": created,
                }
                for index in INDICES
            ],
            "personalizationReRanking": "medium",
            "profileType": "basic",
            "status": {"type": "active", "errors": [], "lastUpdatedAt": stamp},
            "features": {"realtime": {"enabled": False}},
        }
