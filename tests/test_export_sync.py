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


def test_a_delta_adds_who_joined_and_removes_who_left_or_withdrew_consent(loaded, tmp_path):
    pipeline, _, campers, hikers = loaded
    build_segments(pipeline, NARROW)
    everyone = sorted(campers + hikers)
    path = write_customers(tmp_path / "crm.csv", everyone, opted_out={hikers[0]}, no_choice={hikers[1]})
    options = dict(output_dir=tmp_path / "out", platform="meta", phone_region="US", sync="meta_test")
    full = export_audience(pipeline, "campers", customers=path, **options)
    assert read_pairs(full.path, "email", "phone") == expected_hashes(set(campers), everyone, "meta", "US")

    build_segments(pipeline, WIDE)  # the hikers join
    withdrawn = campers[0]
    path = write_customers(tmp_path / "crm2.csv", everyone, opted_out={hikers[0], withdrawn}, no_choice={hikers[1]})
    first = export_audience(pipeline, "campers", customers=path, filename="d1.csv", changes_since="last", **options)
    assert first.path.name == "d1.add.csv" and first.remove_path.name == "d1.remove.csv"
    # a hiker who opted out, or never chose, joined the audience but is never in an add list
    assert read_pairs(first.path, "email", "phone") == expected_hashes(set(hikers[2:]), everyone, "meta", "US")
    assert read_pairs(first.remove_path, "email", "phone") == expected_hashes({withdrawn}, everyone, "meta", "US")
    assert (first.rows, first.removed) == (len(hikers) - 2, 1)

    build_segments(pipeline, NARROW)  # the hikers leave: removed whatever their consent
    second = export_audience(pipeline, "campers", customers=path, filename="d2.csv", changes_since="last", **options)
    assert second.rows == 0 and read_pairs(second.path, "email", "phone") == set()
    assert read_pairs(second.remove_path, "email", "phone") == expected_hashes(set(hikers) | {withdrawn}, everyone, "meta", "US")

    # since the full export the hikers came and went: in neither list; the withdrawn customer stays removed
    net = export_audience(pipeline, "campers", customers=path, filename="d3.csv", changes_since=full.build_id, **options)
    assert net.rows == 0 and read_pairs(net.remove_path, "email", "phone") == expected_hashes({withdrawn}, everyone, "meta", "US")

    # an opt-out that cannot be read refuses a delta as it refuses a full export: nothing written
    unreadable = tmp_path / "crm3.csv"
    unreadable.write_text(path.read_text().replace(",no\n", ",unsubscribed\n", 1))
    with pytest.raises(ConfigurationError, match=r"1 value\(s\) of the opt-out column 'opted_out' cannot be read"):
        export_audience(pipeline, "campers", customers=unreadable, filename="d4.csv", changes_since="last", **options)
    assert not list((tmp_path / "out").glob("d4*"))


def test_a_plain_delta_starts_from_the_last_export_recorded_in_the_warehouse(loaded, tmp_path):
    pipeline, directory, campers, hikers = loaded
    build_segments(pipeline, NARROW)
    export_audience(pipeline, "campers", output_dir=tmp_path / "out")
    build_segments(pipeline, WIDE)
    # a fresh runner: the same DuckDB file, no pipeline folder
    fresh = make_pipeline(pipeline_name="sync_exports", duckdb_path=str(directory / "project" / "sync_exports.duckdb"),
                          pipelines_dir=str(tmp_path / "fresh"))
    result = export_audience(fresh, "campers", output_dir=tmp_path / "out", changes_since="last")
    assert sorted(r["user_id"] for r in csv.DictReader(result.path.open())) == sorted(hikers)  # by score, like a full export
    assert result.path.read_text().splitlines()[0] == '"user_id","score","matched_affinities","built_at"'
    assert result.remove_path.read_text().splitlines() == ['"user_id"']
    build_segments(pipeline, NARROW)
    again = export_audience(fresh, "campers", output_dir=tmp_path / "out", filename="again.csv", changes_since="last")
    assert again.rows == 0 and [r["user_id"] for r in csv.DictReader(again.remove_path.open())] == sorted(hikers)

    with pytest.raises(ConfigurationError, match="no earlier export of audience 'campers' for sync 'crm'"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "none", changes_since="last", sync="crm")
    with pytest.raises(ConfigurationError, match="no build '20200101T000000000000Z' of audience 'campers'"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "none", changes_since="20200101T000000000000Z")
    with pytest.raises(ConfigurationError, match="is not 'last', a build id"):
        export_audience(pipeline, "campers", output_dir=tmp_path / "none", changes_since="yesterday")
    assert not (tmp_path / "none").exists()  # refused before anything, the folder included


def test_a_delta_on_postgres(emulator_factory, pg_pipeline_factory, tmp_path):  # noqa: F811
    emu = emulator_factory(n_users=150, seed=3)
    pipeline = pg_pipeline_factory()
    run(pipeline, emu, page_size=150)
    campers = sorted(p["userID"] for p in emu.store.users() if _has(p, "Camping"))
    hikers = sorted(p["userID"] for p in emu.store.users() if _has(p, "Hiking") and not _has(p, "Camping"))
    assert campers and hikers
    build_segments(pipeline, NARROW)
    with pipeline.sql_client() as client:  # the customers in a warehouse table
        table = client.make_qualified_table_name("crm_customers")
        client.execute_sql(f"CREATE TABLE {table} (user_token TEXT, email TEXT, phone TEXT, opted_out BOOLEAN)")
        for i, user in enumerate(campers + hikers):
            client.execute_sql(f"INSERT INTO {table} VALUES (%s, %s, %s, %s)",
                               user, f"c{i}@example.com", f"+1 650 555 {i:04d}", user == hikers[0])
    options = dict(output_dir=tmp_path, customers_table="crm_customers", platform="google")
    export_audience(pipeline, "campers", **options)
    build_segments(pipeline, WIDE)
    fresh = make_pipeline(pipeline_name=pipeline.pipeline_name, destination=pipeline.destination,
                          dataset_name=pipeline.dataset_name, pipelines_dir=str(tmp_path / "fresh"))
    added = export_audience(fresh, "campers", filename="d1.csv", changes_since="last", **options)
    index = {user: i for i, user in enumerate(campers + hikers)}
    assert {r["Email"] for r in csv.DictReader(added.path.open())} == {
        sha256_hex(f"c{index[u]}@example.com") for u in hikers[1:]}  # the opted-out hiker is not added
    build_segments(pipeline, NARROW)
    removed = export_audience(fresh, "campers", filename="d2.csv", changes_since="last", **options)
    assert {(r["Email"], r["Phone"]) for r in csv.DictReader(removed.remove_path.open())} == {
        (sha256_hex(f"c{index[u]}@example.com"), sha256_hex(f"+1650555{index[u]:04d}")) for u in hikers}
    assert removed.rows == 0 and removed.unremovable == 0
