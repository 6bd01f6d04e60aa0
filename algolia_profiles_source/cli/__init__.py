"""The ``algolia-profiles`` command: ``demo``, ``load``, ``emulator``, ``segments``, ``export``,
``report``, ``status``, ``doctor`` and ``forget``; each calls the function of the same name in :mod:`..api`.

Exit codes: 0 success, 1 the run failed (API unavailable, malformed data), 2 bad usage or
configuration (the message says what to fix).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import click

from .audiences import report_command, segments
from .dbt import dbt_command
from .exports import export
from .loading import demo, emulator, load
from .common import EXIT_FAILED, EXIT_USAGE
from .privacy import forget
from .status import doctor_command, status_command

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: every error one line with the same ``error:`` prefix (click's
    usage errors included), exit 2 for usage, 1 for a failed run."""
    try:
        code = cli.main(args=argv, prog_name="algolia-profiles", standalone_mode=False)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "algolia-profiles"
        click.echo(f"error: {error.format_message()} (see '{command} --help')", err=True)
        raise SystemExit(EXIT_USAGE) from None
    except click.ClickException as error:
        click.echo(f"error: {error.format_message()}", err=True)
        raise SystemExit(error.exit_code) from None
    except click.Abort:
        click.echo("error: aborted", err=True)
        raise SystemExit(EXIT_FAILED) from None
    raise SystemExit(code if isinstance(code, int) else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-v", "--verbose", is_flag=True, help="Log each request and retry (never the API key).")
def cli(verbose: bool) -> None:
    """Export Algolia Advanced Personalization profiles into a warehouse with dlt."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for command in (demo, load, emulator, segments, export, status_command, doctor_command, report_command, forget):
    cli.add_command(command)
segments.add_command(dbt_command)
