"""The emulator answers Algolia's own JavaScript code unchanged.

Two callers: the official client `@algolia/advanced-personalization` (npm, pinned below) pointed at
the emulator with a custom host, and the export guide's loop (plain ``fetch`` with a query string,
``nextPageToken=`` empty on the first call, looping while the response's token is non-empty).
Skipped when node/npm are missing or the package cannot be installed (offline).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from algolia_profiles_source.emulator import Emulator

PACKAGE = "@algolia/advanced-personalization@0.0.1-alpha.48"
NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=timezone.utc)
SPECIAL_ID = "anon-js/test+id=="

CLIENT_SCRIPT = """
import { advancedPersonalizationClient } from '@algolia/advanced-personalization';

const [port, specialId] = process.argv.slice(2);
const client = advancedPersonalizationClient('demo-app', 'demo-key', 'us', {
  hosts: [{ url: '127.0.0.1', port: Number(port), accept: 'readWrite', protocol: 'http' }],
});

const ids = [];
let pages = 0;
let nextPageToken;
do {
  const res = await client.getUsers({ limit: 7, ...(nextPageToken ? { nextPageToken } : {}) });
  res.users.forEach((u) => ids.push(u.userID));
  nextPageToken = res.nextPageToken;
  pages += 1;
} while (nextPageToken);

const camping = [];
let token;
do {
  const res = await client.getUsers({ affinity: ['category:Camping', 'brand'],
                                      indices: ['products_en_US'], limit: 5, nextPageToken: token });
  res.users.forEach((u) => camping.push(u.userID));
  token = res.nextPageToken;
} while (token);

const one = await client.getUser({ userID: specialId });
const config = await client.getConfig();
let notFound = null;
try {
  await client.getUser({ userID: 'no_such_user' });
} catch (e) {
  notFound = e.status;
}
const deleted = await client.deleteUser({ userID: specialId });
console.log(JSON.stringify({ ids, pages, camping, one, indices: config.indices.map((i) => i.index),
                             notFound, deleted }));
"""

GUIDE_SCRIPT = """
// The export guide's loop, with the URL built by hand instead of the `qs` package.
const [baseUrl] = process.argv.slice(2);
const headers = { 'X-Algolia-Application-Id': 'demo-app', 'X-Algolia-API-Key': 'demo-key' };
const users = [];
let nextPageToken = '';
do {
  const query = new URLSearchParams({ limit: '10', nextPageToken }).toString();
  const response = await fetch(`${baseUrl}/2/users?${query}`, { headers });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  const data = await response.json();
  users.push(...data.users);
  nextPageToken = data.nextPageToken;
} while (nextPageToken);
console.log(JSON.stringify({ ids: users.map((u) => u.userID) }));
"""


@pytest.fixture(scope="session")
def js_client_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the official client installed (once per session)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are required for the JavaScript client tests")
    workdir = tmp_path_factory.mktemp("algolia_js")
    (workdir / "package.json").write_text('{"name": "emulator-js-test", "private": true}')
    try:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", PACKAGE],
            cwd=workdir, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install {PACKAGE} timed out (no network?)")
    if proc.returncode != 0:
        pytest.skip(f"npm install {PACKAGE} failed (no network?): {proc.stderr[-500:]}")
    return workdir


@pytest.fixture()
def emu() -> Iterator[Emulator]:
    with Emulator(n_users=120, seed=11, now=NOW, last_page_token="empty") as emulator:
        emulator.store.upsert({"userID": SPECIAL_ID, "type": "basic", "affinities": []})
        yield emulator


def run_node(workdir: Path, name: str, script: str, *args: str) -> dict[str, Any]:
    path = workdir / name
    path.write_text(script)
    proc = subprocess.run(["node", str(path), *args], cwd=workdir, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_official_js_client_lists_gets_and_deletes(js_client_dir: Path, emu: Emulator) -> None:
    users = emu.store.users()
    out = run_node(js_client_dir, "client.mjs", CLIENT_SCRIPT, str(emu.port), SPECIAL_ID)
    assert out["ids"] == [u["userID"] for u in users]
    assert out["pages"] == -(-len(users) // 7)
    assert out["camping"] == [
        u["userID"] for u in users
        if any(a["name"] == "category" and a["value"] == "Camping" for a in u["affinities"])
        and any(a["name"] == "brand" for a in u["affinities"])
        and any("products_en_US" in a["indices"] for a in u["affinities"])]
    assert out["camping"]
    assert out["one"] == next(u for u in users if u["userID"] == SPECIAL_ID)
    assert out["indices"] == ["products_en_US", "products_fr_FR", "products_zh_CN"]
    assert out["notFound"] == 404
    assert out["deleted"]["userID"] == SPECIAL_ID and emu.store.get(SPECIAL_ID) is None
    # the client sent the list parameters comma-joined and its agent, which the emulator ignores
    filtered = [r for r in emu.requests if r.params.get("affinity")]
    assert filtered[0].params["affinity"] == "category:Camping,brand"
    assert filtered[0].params["indices"] == "products_en_US"
    assert "x-algolia-agent" in filtered[0].params
    assert any(r.path == "/2/users/anon-js%2Ftest%2Bid%3D%3D" for r in emu.requests)


def test_export_guide_fetch_loop(js_client_dir: Path, emu: Emulator) -> None:
    out = run_node(js_client_dir, "guide.mjs", GUIDE_SCRIPT, emu.base_url)
    assert out["ids"] == [u["userID"] for u in emu.store.users()]
    first = emu.requests[0]
    assert first.params == {"limit": "10", "nextPageToken": ""}
    assert first.status == 200
