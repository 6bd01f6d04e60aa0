"""The ``algolia-profiles`` command: ``demo``, ``load``, ``emulator``, ``segments``, ``export``,
``report``, ``status`` and ``doctor``; each calls the function of the same name in :mod:`..api`.

Exit codes: 0 success, 1 the run failed (API unavailable, malformed data), 2 bad usage or
configuration (the message says what to fix).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import click

from .audiences import export, report_command, segments
from .loading import demo, emulator, load
from .status import doctor_command, status_command

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="algolia-profiles", standalone_mode=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-v", "--verbose", is_flag=True, help="Log each request and retry (never the API key).")
def cli(verbose: bool) -> None:
    """Export Algolia Advanced Personalization profiles into a warehouse with dlt."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for command in (demo, load, emulator, segments, export, status_command, doctor_command, report_command):
    cli.add_command(command)
