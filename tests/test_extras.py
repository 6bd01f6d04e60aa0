"""Each extra installs what its destination's code path imports: the driver dlt loads with, and what
the one read path (:mod:`algolia_profiles_source.warehouse.read`) needs to fetch results as Arrow."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement

# the modules each destination's path imports at run time (dlt's client, then reading results back)
CODE_PATHS = {
    "postgres": ["psycopg2"],
    "snowflake": ["snowflake.connector", "pandas", "pyarrow"],  # fetch_arrow_all needs pandas
    "bigquery": ["google.cloud.bigquery", "db_dtypes", "pyarrow"],
    "motherduck": ["duckdb", "pyarrow"],
}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirement: Requirement, seen: set[str] | None = None) -> set[str]:
    """The distributions ``requirement`` installs, following the extras it names (installed ones)."""
    seen = set() if seen is None else seen
    name = _name(requirement.name)
    key = f"{name}[{','.join(sorted(requirement.extras))}]"
    if key in seen:
        return seen
    seen.add(key)
    try:
        requires = metadata.requires(requirement.name) or []
    except metadata.PackageNotFoundError:
        return seen
    for line in requires:
        child = Requirement(line)
        if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in requirement.extras or {""}):
            closure(child, seen)
    return seen


def distributions(extra: str) -> set[str]:
    return {key.split("[")[0] for key in closure(Requirement(f"algolia-profiles[{extra}]"))}


@pytest.mark.parametrize("extra", sorted(CODE_PATHS))
def test_an_extra_installs_every_module_its_code_path_imports(extra):
    installed = distributions(extra)
    by_module = metadata.packages_distributions()
    for module in CODE_PATHS[extra]:
        top = module.split(".")[0]
        providers = {_name(d) for d in by_module.get(top, [])}
        if top == "google":  # a namespace package: the distribution is named after the full path
            providers = {_name(module.replace(".", "-"))}
        assert providers & installed, f"[{extra}] does not install {module} (from {providers or 'nothing'})"


def test_the_snowflake_extra_keeps_the_connector_that_the_emulated_tests_run():
    requires = [Requirement(r) for r in metadata.requires("algolia-profiles") or []]
    connector = next(r for r in requires if r.name == "snowflake-connector-python" and "snowflake" in str(r.marker))
    assert metadata.version("snowflake-connector-python") in connector.specifier
