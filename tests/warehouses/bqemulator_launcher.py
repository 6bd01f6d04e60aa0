"""Starts bqemulator without DuckDB's ``spatial`` extension. Run by bqemulator's OWN interpreter
(its virtualenv, see ``tests/warehouses/bigquery_server.py``), never imported by the tests::

    <bqemulator venv>/bin/python bqemulator_launcher.py start --rest-port P --grpc-port Q ...

bqemulator 1.4.0 runs ``INSTALL spatial`` / ``LOAD spatial`` at start-up
(``bqemulator.storage.engine.DuckDBEngine._load_spatial``) and refuses to start when that fails;
``INSTALL`` downloads the extension, which cannot work offline, and there is no setting to skip it.
The project's SQL uses no GEOGRAPHY type nor ``ST_*`` function, so the launcher replaces that one
method with a no-op before handing the arguments to bqemulator's own command line. GEOGRAPHY
queries would then fail with DuckDB's "unknown function" error, which is fine here.
"""

from __future__ import annotations

import sys


def main() -> None:
    from bqemulator.storage.engine import DuckDBEngine

    def _load_spatial(self: DuckDBEngine) -> None:  # offline: no extension download
        return None

    DuckDBEngine._load_spatial = _load_spatial  # type: ignore[method-assign]

    from bqemulator.cli import main as cli

    cli(args=sys.argv[1:], prog_name="bqemulator")


if __name__ == "__main__":
    main()
