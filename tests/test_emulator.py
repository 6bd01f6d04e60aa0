"""Tests of the Advanced Personalization API emulator, over real HTTP on loopback."""

from __future__ import annotations

import http.client
import math
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
import requests

from algolia_profiles_source.emulator import (
    ATTRIBUTES,
    FAULT_KINDS,
    INDICES,
    Emulator,
    ProfileStore,
    RequestRecord,
)

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)
HEADERS = {"x-algolia-application-id": "demo-app", "x-algolia-api-key": "demo-key"}
ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789=+/_-")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """A read-only emulator shared by the tests that do not change state."""
    with Emulator(n_users=300, seed=7, now=NOW) as emulator:
        yield emulator


@pytest.fixture()
def fresh() -> Iterator[Emulator]:
    """A private emulator for tests that change data, faults or limits."""
    with Emulator(n_users=60, seed=3, now=NOW) as emulator:
        yield emulator


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers.update(HEADERS)
        yield s


def get(session: requests.Session, emu: Emulator, path: str, **params: Any) -> requests.Response:
    return session.get(emu.base_url + path, params=params, timeout=10)


def walk(session: requests.Session, emu: Emulator, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page of GET /2/users following nextPageToken; fails on a repeated token."""
    pages, seen, token = [], set(), params.pop("nextPageToken", None)
    while True:
        r = get(session, emu, "/2/users", **params, **({"nextPageToken": token} if token else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["users"])
        token = body.get("nextPageToken")
        if not token:
            return pages
        assert token not in seen
        seen.add(token)


def ids_of(pages: list[list[dict[str, Any]]]) -> list[str]:
    return [u["userID"] for page in pages for u in page]


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


# ------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("headers", [
    {},
    {"x-algolia-application-id": "demo-app"},
    {"x-algolia-application-id": "demo-app", "x-algolia-api-key": "wrong"},
    {"x-algolia-application-id": "other-app", "x-algolia-api-key": "demo-key"},
])
def test_bad_credentials_get_401(emu: Emulator, headers: dict[str, str]) -> None:
    for path in ("/2/users", "/2/config", "/2/users/abc", "/_emulator/users"):
        r = requests.get(emu.base_url + path, headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json() == {"status": 401, "message": "Unauthorized"}


def test_api_key_never_recorded_or_echoed(fresh: Emulator) -> None:
    r = requests.get(fresh.base_url + "/2/users", timeout=10, params={
        "x-algolia-application-id": "demo-app", "x-algolia-api-key": "demo-key", "limit": "2"})
    assert r.status_code == 200  # Algolia also accepts credentials as query parameters
    requests.get(fresh.base_url + "/2/users", headers={**HEADERS, "x-algolia-api-key": "s3cr3t"},
                 timeout=10)
    recorded = repr(fresh.requests) + repr([r.headers])
    assert "demo-key" not in recorded and "s3cr3t" not in recorded
    assert fresh.requests[0].params == {"x-algolia-application-id": "demo-app", "limit": "2"}
    assert [rec.status for rec in fresh.requests] == [200, 401]


# ------------------------------------------------------------------------------- paging
def test_paging_walks_every_user_once_in_lexicographic_order(emu, session) -> None:
    pages = walk(session, emu, limit=7)
    ids = ids_of(pages)
    expected = emu.store.users()
    assert ids == [u["userID"] for u in expected] == sorted(ids)
    assert len(set(ids)) == len(ids) == len(emu.store) == 300
    assert [len(p) for p in pages] == [7] * (300 // 7) + [300 % 7]
    assert [u for p in pages for u in p] == expected  # exact API shape, same bytes as the store


@pytest.mark.parametrize(("mode", "present", "value"),
                         [("missing", False, None), ("null", True, None), ("empty", True, "")])
def test_last_page_token_modes(mode: str, present: bool, value: str | None, session) -> None:
    with Emulator(n_users=25, seed=1, now=NOW, last_page_token=mode) as e:
        pages = walk(session, e, limit=10)
        assert [len(p) for p in pages] == [10, 10, 5]
        r = get(session, e, "/2/users", limit=100).json()  # a single, first-and-last page
        assert ("nextPageToken" in r) is present and r.get("nextPageToken") == value
        assert "previousPageToken" not in r
        e.set_last_page_token("missing")
        assert "nextPageToken" not in get(session, e, "/2/users", limit=100).json()


def test_default_limit_and_empty_params_count_as_absent(emu, session) -> None:
    first = get(session, emu, "/2/users").json()
    assert len(first["users"]) == 10
    same = get(session, emu, "/2/users", nextPageToken="", previousPageToken="", limit="",
               startDate="", **{"x-algolia-agent": "Algolia for JavaScript (5.0.0)"}).json()
    assert same == first
    with Emulator(n_users=30, seed=1, now=NOW, default_limit=4) as e:
        assert len(get(session, e, "/2/users").json()["users"]) == 4


def test_previous_page_token_walks_back(emu, session) -> None:
    forward = []
    body = get(session, emu, "/2/users", limit=50).json()
    forward.append(body["users"])
    while body.get("nextPageToken"):
        body = get(session, emu, "/2/users", limit=50, nextPageToken=body["nextPageToken"]).json()
        forward.append(body["users"])
    backward = [body["users"]]
    while body.get("previousPageToken"):
        body = get(session, emu, "/2/users", limit=50,
                   previousPageToken=body["previousPageToken"]).json()
        backward.append(body["users"])
    assert backward[::-1] == forward
    assert "previousPageToken" not in body and body.get("nextPageToken")


def test_walk_survives_changes_between_pages(fresh, session) -> None:
    first = get(session, fresh, "/2/users", limit=20).json()
    ids = [u["userID"] for u in fresh.store.users()]
    last_seen = first["users"][-1]["userID"]
    fresh.store.delete(ids[20])  # the next page's first user disappears
    fresh.store.upsert({"userID": last_seen + "0", "type": "basic", "affinities": []})
    rest = walk(session, fresh, limit=20, nextPageToken=first["nextPageToken"])
    got = [u["userID"] for u in first["users"]] + ids_of(rest)
    assert got == [u["userID"] for u in fresh.store.users()]
    assert ids[20] not in got and last_seen + "0" in got


# ------------------------------------------------------------------------------- filters
def test_start_date_is_exclusive_and_end_date_exclusive(emu, session) -> None:
    users = emu.store.users()
    stamp, count = Counter(u["lastUpdatedAt"] for u in users).most_common(1)[0]
    assert count >= 3
    t = parse(stamp)
    after = ids_of(walk(session, emu, startDate=stamp, limit=1000))
    before = ids_of(walk(session, emu, endDate=stamp, limit=1000))
    assert after == [u["userID"] for u in users if parse(u["lastUpdatedAt"]) > t]
    assert before == [u["userID"] for u in users if parse(u["lastUpdatedAt"]) < t]
    assert len(after) + len(before) + count == len(users)
    window = ids_of(walk(session, emu, limit=1000, startDate=stamp,
                         endDate=(t + timedelta(days=10)).isoformat()))
    assert window == [u["userID"] for u in users
                      if t < parse(u["lastUpdatedAt"]) < t + timedelta(days=10)]
    # the same instant written with an offset selects the same users
    offset = t.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert ids_of(walk(session, emu, startDate=offset, limit=1000)) == after


def test_affinity_and_indices_filters_are_and_of_items(emu, session) -> None:
    users = emu.store.users()

    def has(u: dict[str, Any], name: str, value: str | None = None) -> bool:
        return any(a["name"] == name and (value is None or a["value"] == value)
                   for a in u["affinities"])

    def on_index(u: dict[str, Any], index: str) -> bool:
        return any(index in a["indices"] for a in u["affinities"])

    camping = ids_of(walk(session, emu, affinity="category:Camping", limit=13))
    assert camping == [u["userID"] for u in users if has(u, "category", "Camping")]
    assert len(camping) >= 20  # the docs' camping audience is common

    both = ids_of(walk(session, emu, affinity="category:Camping,price_range", limit=13))
    assert both == [u["userID"] for u in users
                    if has(u, "category", "Camping") and has(u, "price_range")]
    assert 0 < len(both) < len(camping)

    colon = ids_of(walk(session, emu, affinity="collection:Été: randonnée", limit=100))
    assert colon == [u["userID"] for u in users if has(u, "collection", "Été: randonnée")]
    assert colon

    idx = ids_of(walk(session, emu, indices="products_zh_CN", limit=100))
    idx2 = ids_of(walk(session, emu, indices="products_zh_CN,products_fr_FR", limit=100))
    assert idx == [u["userID"] for u in users if on_index(u, "products_zh_CN")]
    assert idx2 == [u["userID"] for u in users
                    if on_index(u, "products_zh_CN") and on_index(u, "products_fr_FR")]
    assert len(idx2) <= len(idx) < len(users)

    none = get(session, emu, "/2/users", affinity="category:Camping,category:Nope").json()
    assert none["users"] == [] and "nextPageToken" not in none


@pytest.mark.parametrize(("params", "word"), [
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "x"}, "limit"),
    ({"limit": "2.5"}, "limit"),
    ({"startDate": "yesterday"}, "startDate"),
    ({"endDate": "2026-13-01T00:00:00Z"}, "endDate"),
    ({"startDate": "2026-11-01T00:00:00"}, "startDate"),  # no offset: not RFC 3339
    ({"startDate": "2026-11-02T00:00:00Z", "endDate": "2026-11-01T00:00:00Z"}, "startDate"),
    ({"startDate": "2026-11-01T00:00:00Z", "endDate": "2026-11-01T00:00:00Z"}, "startDate"),
    ({"nextPageToken": "bm90IGEgdG9rZW4", "previousPageToken": "bm90IGEgdG9rZW4"}, "Token"),
    ({"nextPageToken": "garbage!"}, "nextPageToken"),
    ({"previousPageToken": "e30"}, "previousPageToken"),
])
def test_invalid_parameters_get_422(emu, session, params: dict[str, str], word: str) -> None:
    r = get(session, emu, "/2/users", **params)
    assert r.status_code == 422
    body = r.json()
    assert body["status"] == 422 and word in body["message"]
    assert body["message"].startswith("Unprocessable Entity")


def test_foreign_and_wrong_direction_tokens_get_422(emu, session) -> None:
    token = get(session, emu, "/2/users", limit=5).json()["nextPageToken"]
    assert get(session, emu, "/2/users", previousPageToken=token).status_code == 422
    with Emulator(n_users=20, seed=7, now=NOW, app_id="other-app") as other:
        r = session.get(other.base_url + "/2/users", params={"nextPageToken": token}, timeout=10,
                        headers={"x-algolia-application-id": "other-app"})
        assert r.status_code == 422 and "nextPageToken" in r.json()["message"]


# ------------------------------------------------------------------------------- one user
def test_get_and_delete_one_user_with_reserved_characters(fresh, session) -> None:
    uid = "anon-a/b+c=="
    fresh.store.upsert({"userID": uid, "type": "basic", "affinities": []})
    path = "/2/users/" + quote(uid, safe="")
    assert path == "/2/users/anon-a%2Fb%2Bc%3D%3D"
    r = get(session, fresh, path)
    assert r.status_code == 200 and r.json() == fresh.store.get(uid)
    generated = next(u for u in fresh.store.users() if set(u["userID"]) & set("/+="))
    assert get(session, fresh, "/2/users/" + quote(generated["userID"], safe="")).json() == generated

    r = session.delete(fresh.base_url + path, timeout=10)
    body = r.json()
    assert r.status_code == 200
    assert body["message"] == "User deleted" and body["status"] == 200 and body["userID"] == uid
    assert parse(body["deletedUntil"]) - parse(body["deletedAt"]) == timedelta(days=30)
    assert fresh.store.get(uid) is None
    assert uid not in ids_of(walk(session, fresh, limit=1000))
    assert get(session, fresh, path).status_code == 404
    assert session.delete(fresh.base_url + path, timeout=10).json() == {
        "status": 404, "message": "Not Found"}


@pytest.mark.parametrize("user_id", ["bad id", "é", "a.b", "x" * 130])
def test_invalid_user_id_gets_400(emu, session, user_id: str) -> None:
    r = get(session, emu, "/2/users/" + quote(user_id, safe=""))
    assert r.status_code == 400
    assert r.json() == {"status": 400, "message": "Invalid userID format"}


def test_unknown_paths_and_methods(emu, session) -> None:
    assert get(session, emu, "/2/users/unknown_user").json() == {"status": 404,
                                                                "message": "Not Found"}
    for path in ("/2/nothing", "/1/profiles/personalization/x", "/"):
        r = get(session, emu, path)
        assert r.status_code == 404 and r.json()["status"] == 404
    r = session.post(emu.base_url + "/2/users", json={}, timeout=10)
    assert r.status_code == 405 and r.json()["status"] == 405
    assert len(walk(session, emu, limit=1000)[0]) == 300  # nothing was changed


def test_config_matches_the_data(emu, session) -> None:
    r = get(session, emu, "/2/config")
    assert r.status_code == 200
    cfg = r.json()
    assert set(cfg) == {"indices", "personalizationReRanking", "profileType", "status", "features"}
    assert cfg["personalizationReRanking"] == "medium" and cfg["profileType"] == "basic"
    assert cfg["status"]["type"] == "active" and cfg["status"]["errors"] == []
    assert cfg["features"] == {"realtime": {"enabled": False}}
    assert [i["index"] for i in cfg["indices"]] == list(INDICES)
    attrs = {i["index"]: set(i["affinities"]) for i in cfg["indices"]}
    for entry in cfg["indices"]:
        assert 1 <= len(entry["affinities"]) <= 20
        assert entry["source"]["type"] == "insights" and entry["source"]["events"]
        assert entry["errors"] == [] and entry["warnings"] == []
        parse(entry["lastUpdatedAt"])
    for user in emu.store.users():
        for a in user["affinities"]:
            assert a["indices"] and all(a["name"] in attrs[i] for i in a["indices"])


# ------------------------------------------------------------------------------- rate limit
def test_rate_limit_headers_429_and_recovery(session) -> None:
    window = 2.0
    with Emulator(n_users=5, seed=1, now=NOW, rate_limit=3, rate_window=window) as e:
        # windows are aligned on the clock: start the calls at the beginning of one, so that no
        # window boundary falls between them
        time.sleep(window - time.time() % window + 0.01)
        remaining = []
        for _ in range(3):
            r = get(session, e, "/2/config")
            assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "3"
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        r = get(session, e, "/2/users")
        assert r.status_code == 429
        assert r.json() == {"status": 429, "message": "Too Many Requests"}
        assert r.headers["x-ratelimit-remaining"] == "0"
        reset = int(r.headers["x-ratelimit-reset"])
        assert reset >= time.time() - 0.01 and reset <= math.ceil(time.time() + window)
        assert get(session, e, "/2/users").status_code == 429  # 429s consume nothing
        time.sleep(max(0.0, reset - time.time()))  # wait for the reset instant itself
        deadline = time.time() + 5
        while (r := get(session, e, "/2/users")).status_code == 429 and time.time() < deadline:
            time.sleep(0.02)
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "2"
        assert [rec.status for rec in e.requests].count(429) >= 2
        admin = session.get(e.base_url + "/_emulator/users", timeout=10)
        assert admin.status_code == 200 and "x-ratelimit-limit" not in admin.headers


def test_set_rate_limit_and_latency(fresh, session) -> None:
    fresh.set_rate_limit(1, 60)
    assert get(session, fresh, "/2/config").status_code == 200
    assert get(session, fresh, "/2/config").status_code == 429
    fresh.set_rate_limit(500, 60)
    fresh.set_latency(0.2)
    started = time.monotonic()
    r = get(session, fresh, "/2/config")
    assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "499"
    assert time.monotonic() - started >= 0.2


# ------------------------------------------------------------------------------- faults
def test_each_fault_kind_as_a_client_sees_it(fresh, session) -> None:
    fresh.inject(*FAULT_KINDS)
    r = get(session, fresh, "/2/users")
    assert r.status_code == 500 and r.json() == {"status": 500, "message": "Internal Server Error"}
    r = get(session, fresh, "/2/users")
    assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")
    assert "<html>" in r.text and "x-ratelimit-limit" not in r.headers
    with pytest.raises(requests.JSONDecodeError):
        r.json()
    r = get(session, fresh, "/2/users")
    assert r.status_code == 429 and r.json() == {"status": 429, "message": "Too Many Requests"}
    assert r.headers["x-ratelimit-remaining"] == "0" and int(r.headers["x-ratelimit-reset"]) > 0
    with pytest.raises(requests.ConnectionError):
        get(session, fresh, "/2/users")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.JSONDecodeError)):
        get(session, fresh, "/2/users").json()
    ok = get(session, fresh, "/2/users")  # the session recovers on a new connection
    assert ok.status_code == 200 and len(ok.json()["users"]) == 10
    records = fresh.requests
    assert [r.fault for r in records] == [*FAULT_KINDS, None]
    assert [r.status for r in records] == [500, 503, 429, 0, 200, 200]
    assert all(r.path == "/2/users" for r in records)


def test_reset_is_a_tcp_rst_without_response(fresh) -> None:
    fresh.inject("reset")
    conn = http.client.HTTPConnection(fresh.host, fresh.port, timeout=10)
    conn.request("GET", "/2/config", headers=HEADERS)
    with pytest.raises(ConnectionResetError):
        conn.getresponse()
    conn.close()


def test_random_faults_are_deterministic_and_api_only(session) -> None:
    def run() -> list[str | None]:
        with Emulator(n_users=5, seed=1, now=NOW, fault_rate=0.5, fault_kinds=("500", "429"),
                      fault_seed=11) as e:
            for _ in range(20):
                get(session, e, "/2/config")
                assert session.get(e.base_url + "/_emulator/users", timeout=10).status_code == 200
            return [r.fault for r in e.requests]

    faults = run()
    assert faults == run()
    assert set(faults) == {"500", "429", None} and len(faults) == 20
    with Emulator(n_users=5, seed=1, now=NOW) as e:
        e.set_faults(rate=1.0, kinds=["503_html"], seed=0)
        assert [get(session, e, "/2/config").status_code for _ in range(3)] == [503] * 3
        e.set_faults(rate=0.0)
        assert get(session, e, "/2/config").status_code == 200
    with pytest.raises(ValueError):
        Emulator(n_users=1, fault_kinds=("boom",))


# ------------------------------------------------------------------------------- admin
def test_admin_endpoints(fresh, session) -> None:
    base = fresh.base_url + "/_emulator"
    profile = {"userID": "zz_admin+1/=", "type": "predictive", "lastUpdatedAt": "2026-11-27T11:00:00Z",
               "affinities": [{"name": "brand", "value": "Levi's", "indices": ["products_en_US"],
                               "score": 12.5, "lastUpdatedAt": "2026-11-27T11:00:00Z"}]}
    assert session.put(base + "/users", json=[profile, {"userID": "zz_plain"}],
                       timeout=10).status_code == 200
    listed = session.get(base + "/users", timeout=10).json()
    assert listed == fresh.store.users() and len(listed) == 62
    assert fresh.store.get("zz_admin+1/=") == profile
    plain = fresh.store.get("zz_plain")
    assert plain["affinities"] == [] and parse(plain["lastUpdatedAt"]) >= NOW
    assert session.put(base + "/users", json=[{"userID": "bad id"}], timeout=10).status_code == 400
    assert session.put(base + "/users", data=b"{nope", timeout=10).status_code == 400

    r = session.delete(base + "/users/" + quote("zz_admin+1/=", safe=""), timeout=10)
    assert r.status_code == 200 and fresh.store.get("zz_admin+1/=") is None
    assert session.delete(base + "/users/zz_admin", timeout=10).status_code == 404

    assert session.post(base + "/inject", json={"kinds": ["500"]}, timeout=10).status_code == 200
    assert get(session, fresh, "/2/config").status_code == 500
    assert session.post(base + "/inject", json={"kinds": ["nope"]}, timeout=10).status_code == 400
    assert session.post(base + "/faults", json={"rate": 1.0, "kinds": ["429"], "seed": 1},
                        timeout=10).json()["kinds"] == ["429"]
    assert get(session, fresh, "/2/config").status_code == 429
    session.post(base + "/faults", json={"rate": 0}, timeout=10)
    assert get(session, fresh, "/2/config").status_code == 200

    recorded = session.get(base + "/requests", timeout=10).json()
    assert [(r["path"], r["status"], r["fault"]) for r in recorded] == [
        ("/2/config", 500, "500"), ("/2/config", 429, "429"), ("/2/config", 200, None)]
    assert session.delete(base + "/requests", timeout=10).status_code == 200
    assert fresh.requests == [] and session.get(base + "/requests", timeout=10).json() == []
    assert session.get(base + "/nope", timeout=10).status_code == 404


def test_upsert_and_delete_visible_in_list(fresh, session) -> None:
    before = ids_of(walk(session, fresh, limit=1000))
    victim = before[10]
    assert fresh.store.delete(victim) and not fresh.store.delete(victim)
    newest = fresh.store.upsert({"userID": "0000-new", "type": "basic", "affinities": []})
    replaced = dict(fresh.store.get(before[0]), type="realtime",
                    lastUpdatedAt="2026-11-27T12:00:00.5Z")
    fresh.store.upsert(replaced)
    after_pages = walk(session, fresh, limit=1000)
    after = ids_of(after_pages)
    assert after == sorted([*(set(before) - {victim}), "0000-new"]) and victim not in after
    assert after_pages[0][after.index(before[0])] == replaced
    assert len(fresh.store) == len(before)
    assert fresh.store.max_last_updated_at() == max(parse(newest["lastUpdatedAt"]),
                                                    parse("2026-11-27T12:00:00.5Z"))
    incremental = ids_of(walk(session, fresh, startDate=NOW.isoformat(), limit=1000))
    assert sorted(incremental) == sorted(["0000-new", before[0]])
    fresh.store.delete("0000-new")
    assert ids_of(walk(session, fresh, limit=1000)) == sorted(set(before) - {victim})


def test_requests_are_recorded_with_decoded_params(fresh, session) -> None:
    session.get(fresh.base_url + "/2/users?affinity=category%3ACamping&limit=3&limit=4"
                "&nextPageToken=", timeout=10)
    (rec,) = fresh.requests
    assert isinstance(rec, RequestRecord)
    assert (rec.method, rec.path, rec.status, rec.fault) == ("GET", "/2/users", 200, None)
    assert rec.params == {"affinity": "category:Camping", "limit": ["3", "4"], "nextPageToken": ""}
    assert abs(rec.at - time.time()) < 60
    fresh.clear_requests()
    assert fresh.requests == []


def test_keep_alive_and_connection_close(emu) -> None:
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=10)
    for _ in range(3):  # three requests on one connection: lengths must be exact
        conn.request("GET", "/2/users?limit=2", headers=HEADERS)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(body)
    conn.request("GET", "/2/config", headers={**HEADERS, "Connection": "close"})
    resp = conn.getresponse()
    resp.read()
    assert resp.headers["Connection"] == "close" and resp.will_close
    conn.close()


# ------------------------------------------------------------------------------- data
def test_synthetic_data_is_realistic() -> None:
    store = ProfileStore(3000, 5, NOW)
    users = store.users()
    ids = [u["userID"] for u in users]
    assert len(set(ids)) == 3000 and ids == sorted(ids)
    assert set("".join(ids)) == ALLOWED
    assert all(1 <= len(i) <= 129 for i in ids) and any(len(i) >= 120 for i in ids)
    assert any(i.startswith("user_") for i in ids) and any("==" in i for i in ids)

    counts = [len(u["affinities"]) for u in users]
    assert 0.01 < counts.count(0) / 3000 < 0.06
    assert sum(5 <= c <= 20 for c in counts) / 3000 > 0.85 and max(counts) <= 20
    types = Counter(u.get("type") for u in users)
    assert set(types) == {None, "basic", "predictive", "realtime"}

    affs = [a for u in users for a in u["affinities"]]
    for u in users:  # one affinity per (name, value) in a profile
        pairs = [(a["name"], a["value"]) for a in u["affinities"]]
        assert len(pairs) == len(set(pairs))
    scores = [a["score"] for a in affs]
    assert all(1 <= s <= 20 for s in scores)
    assert any(isinstance(s, float) and s != int(s) for s in scores)
    assert sum(isinstance(s, int) for s in scores) / len(scores) > 0.9
    values = {a["value"] for a in affs}
    assert {"Levi's", '"Pro" Series', "Outdoor > Camping", "户外", "Кемпинг", "Ñandú",
            "العربية"} <= values
    assert any("," in v for v in values) and any(":" in v for v in values)
    assert {"categories.lvl0", "categories.lvl1", "category", "brand"} <= {a["name"] for a in affs}
    per_attr = Counter(a["name"] for a in {(a["name"], a["value"]): a for a in affs}.values())
    assert max(per_attr.values()) <= 100
    assert all(set(a["indices"]) <= set(ATTRIBUTES[a["name"]]) for a in affs)
    camping = sum(any(a["name"] == "category" and a["value"] == "Camping"
                      for a in u["affinities"]) for u in users)
    assert camping / 3000 > 0.1

    stamps = Counter(u["lastUpdatedAt"] for u in users)
    assert stamps.most_common(1)[0][1] >= 20  # batch recomputes: many users share an instant
    assert any("." in s for s in stamps) and any("." not in s for s in stamps)
    assert all(s.endswith("Z") for s in stamps)
    for u in users:
        t = parse(u["lastUpdatedAt"])
        assert NOW - timedelta(days=90) <= t < NOW
        assert all(parse(a["lastUpdatedAt"]) <= t for a in u["affinities"])
    assert store.max_last_updated_at() == max(parse(s) for s in stamps)


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = (ProfileStore(500, s, NOW) for s in (9, 9, 10))
    assert a.users() == b.users()
    assert a.users() != c.users()
    assert ProfileStore(500, 9, NOW + timedelta(days=1)).users() != a.users()


def test_large_emulator_serves_a_full_page(session) -> None:
    with Emulator(n_users=200_000, seed=42, now=NOW) as e:
        assert len(e.store) == 200_000
        body = get(session, e, "/2/users", limit=1000).json()
        ids = [u["userID"] for u in body["users"]]
        assert len(ids) == 1000 and ids == sorted(ids) and body["nextPageToken"]
        nxt = get(session, e, "/2/users", limit=1000, nextPageToken=body["nextPageToken"]).json()
        assert nxt["users"][0]["userID"] > ids[-1]
        assert body["users"][0] == e.store.get(ids[0])


def test_stop_closes_kept_alive_connections(session) -> None:
    e = Emulator(n_users=3, seed=1, now=NOW).start()
    assert get(session, e, "/2/config").status_code == 200
    e.stop()
    with pytest.raises(requests.ConnectionError):
        get(session, e, "/2/config")
    e.stop()  # idempotent


def test_requests_are_served_concurrently() -> None:
    """Latency sleeps in the handler thread: six parallel calls take about one latency, not six."""
    from concurrent.futures import ThreadPoolExecutor

    with Emulator(n_users=20, seed=1, now=NOW, latency=0.5) as e:
        def call(_: int) -> int:
            return requests.get(e.base_url + "/2/users", headers=HEADERS, timeout=10).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(call, range(6)))
        elapsed = time.monotonic() - started
    assert statuses == [200] * 6
    assert 0.5 <= elapsed < 2.0  # serial handling would need 3 s


def test_a_prerendered_store_lists_the_same_bytes_before_and_after_admin_changes():
    import orjson

    from algolia_profiles_source.emulator.api_routes import list_users_body
    from algolia_profiles_source.emulator.store import ProfileStore

    now = datetime(2026, 11, 30, tzinfo=timezone.utc)
    plain, fast = ProfileStore(1500, 3, now), ProfileStore(1500, 3, now)
    fast.prerender()

    def walk(store, **params):
        pages, query = [], {"limit": "400", **params}
        while True:
            body = list_users_body(store, query, app_id="A", default_limit=10, last_page_token="missing")
            pages.append(orjson.dumps(body))
            if "nextPageToken" not in body:
                return pages
            query = {**query, "nextPageToken": body["nextPageToken"]}

    assert walk(fast) == walk(plain)
    changed, gone = dict(plain.users()[10], affinities=[]), plain.users()[20]["userID"]
    for store in (plain, fast):
        store.upsert(changed)
        store.delete(gone)
    assert walk(fast) == walk(plain) and walk(fast, startDate="2026-11-01T00:00:00Z") == walk(
        plain, startDate="2026-11-01T00:00:00Z")
    assert walk(fast, affinity="brand") == walk(plain, affinity="brand")
