"""Exports for ad platforms (hashed identifiers only) and delta exports (members to add and to remove
since the last export), on a real DuckDB file loaded from the emulator; the delta also on Postgres."""

from __future__ import annotations

import csv

import pyarrow.parquet as pq
import pytest

from algolia_profiles_source.cli import main
from algolia_profiles_source.emulator import Emulator
from algolia_profiles_source.exceptions import ConfigurationError
from algolia_profiles_source.load.pipeline import make_pipeline
from algolia_profiles_source.segments import build_segments
from algolia_profiles_source.segments.export import export_audience
from algolia_profiles_source.segments.identifiers import PLATFORMS, normalize_phone, sha256_hex
from tests.conftest import API_KEY, APP_ID, run
from tests.postgres_server import postgres_url  # noqa: F401  (session fixture)
from tests.test_postgres_load import pg_pipeline_factory  # noqa: F401  (fixture)

NARROW = {"audiences": {"campers": {"rule": {"affinity": "category:Camping"}}}}
WIDE = {"audiences": {"campers": {"rule": {"any": [{"affinity": "category:Camping"}, {"affinity": "category:Hiking"}]}}}}
PHONES = ["+1 (650) 555-{:04d}", "(650) 555-{:04d}", "020 7946 {:04d}", "not a phone", ""]


def _has(profile, value):
    return any(a["name"] == "category" and a["value"] == value for a in profile["affinities"])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """400 profiles loaded once into DuckDB; the users with Camping, and with Hiking but not Camping."""
    directory = tmp_path_factory.mktemp("sync")
    emu = Emulator(app_id=APP_ID, api_key=API_KEY, n_users=400, seed=3).start()
    try:
        pipeline = make_pipeline(pipeline_name="sync_exports", workdir=str(directory / "project"))
        run(pipeline, emu, page_size=200)
        campers = sorted(p["userID"] for p in emu.store.users() if _has(p, "Camping"))
        hikers = sorted(p["userID"] for p in emu.store.users() if _has(p, "Hiking") and not _has(p, "Camping"))
    finally:
        emu.stop()
    assert len(campers) > 20 and len(hikers) >= 5
    return pipeline, directory, campers, hikers


def write_customers(path, users, opted_out=(), no_choice=()):
    """One record per user: an email with spaces and capitals, a phone in one of PHONES' shapes."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_token", "email", "phone", "first_name", "opted_out"])
        for i, user in enumerate(users):
            choice = "" if user in no_choice else "yes" if user in opted_out else "no"
            writer.writerow([user, f" Customer.{i}@Example.COM ", PHONES[i % len(PHONES)].format(i), f"Name{i}", choice])
    return path


def expected_hashes(users, all_users, platform, region):
    """The (email, phone) hashes of ``users`` as written by write_customers over ``all_users``."""
    target = PLATFORMS[platform]
    out = set()
    for i, user in enumerate(all_users):
        if user in users:
            phone = normalize_phone(PHONES[i % len(PHONES)].format(i), target, region) if PHONES[i % len(PHONES)] else None
            out.add((sha256_hex(f"customer.{i}@example.com"), phone and sha256_hex(phone)))
    return out


def read_pairs(path, email="Email", phone="Phone"):
    return {(row[email], row[phone] or None) for row in csv.DictReader(path.open())}


def test_a_platform_list_holds_only_hashed_identifiers_of_consenting_customers(loaded, tmp_path):
    pipeline, _, campers, _ = loaded
    build_segments(pipeline, NARROW)
    everyone = sorted(campers)
    opted, silent = set(everyone[:4]), set(everyone[4:6])
    path = write_customers(tmp_path / "crm.csv", everyone, opted_out=opted, no_choice=silent)
    result = export_audience(pipeline, "campers", output_dir=tmp_path / "out", customers=path,
                             platform="google", phone_region="US")
    text = result.path.read_text()
    assert text.splitlines()[0] == '"Email","Phone"'
    for raw in ("@", "Customer", "Name", "650", "+1"):  # no raw identifier, no other customer column
        assert raw not in text
    consenting = set(everyone) - opted - silent
    assert read_pairs(result.path) == expected_hashes(consenting, everyone, "google", "US")
    assert (result.opted_out, result.no_consent, result.rows) == (4, 2, len(consenting))
    # "not a phone" and the British numbers read as US ones are not possible numbers
    assert result.unreadable_phones == sum(
        1 for i, u in enumerate(everyone) if u in consenting and PHONES[i % 5] in ("not a phone", "020 7946 {:04d}"))

    meta = export_audience(pipeline, "campers", output_dir=tmp_path / "out", filename="meta.parquet", fmt="parquet",
                           customers=path, platform="meta", phone_region="GB", include_user_id=True)
    table = pq.read_table(meta.path)
    assert table.column_names == ["user_id", "email", "phone"]
    assert set(table["user_id"].to_pylist()) == consenting
    british = [i for i, u in enumerate(everyone) if u in consenting and i % 5 == 2]
    assert sha256_hex(f"44207946{british[0]:04d}") in table["phone"].to_pylist()  # digits only, no leading 0


def test_the_cli_summary_counts_and_refusals(loaded, tmp_path, capsys):
    pipeline, directory, campers, _ = loaded
    build_segments(pipeline, NARROW)
    path = write_customers(tmp_path / "crm.csv", campers, opted_out=set(campers[:2]))
    common = ["export", "campers", "--pipeline-name", "sync_exports", "--dir", str(directory / "project"),
              "--customers", str(path), "--output-dir", str(tmp_path / "out")]

    def cli(*args):
        with pytest.raises(SystemExit) as exit_:
            main([*common, *args])
        printed = capsys.readouterr()
        return exit_.value.code, printed.out + printed.err

    code, output = cli("--platform", "meta", "--output", "meta.csv")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith(f"Wrote {len(campers) - 2:,} rows of meta customer list of campers ({len(campers):,} members")
    unreadable = sum(1 for i in range(len(campers)) if i >= 2 and PHONES[i % 5] != "+1 (650) 555-{:04d}" and PHONES[i % 5])
    assert f"0 emails and {unreadable:,} phones could not be read (left out; pass --phone-region" in lines[2]
    assert "0 opted out" not in lines[1] and "2 opted out (left out)" in lines[1]
    (tmp_path / "out" / "meta.csv").unlink()
    for args, message in [
        (["--platform", "meta", "--keep-unmatched"], "--keep-unmatched"),
        (["--platform", "meta", "--email-column", "mail"], "no email column 'mail' (did you mean 'email'?)"),
        (["--platform", "meta", "--phone-region", "USA"], "not a region code"),
        (["--platform", "facebook"], "not one of"),
    ]:
        code, output = cli(*args)
        assert code == 2 and message in output, output
    with pytest.raises(ConfigurationError, match="give the customer data"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "x", platform="google")
    assert not any((tmp_path / "out").iterdir()) and not (tmp_path / "x").exists()  # nothing written
