"""A destination checked before a pipeline is made: its driver installed, its credentials
configured and its host reachable, each failure one line that says what to install, set or fix
(nothing is written first)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..exceptions import ConfigurationError, causes

EXTRAS = {"postgres": "postgres", "snowflake": "snowflake", "bigquery": "bigquery", "motherduck": "motherduck"}


def check_destination(destination: Any, pipeline_name: str, dataset_name: str) -> None:
    """Raises :class:`ConfigurationError` when ``destination`` (a name or a dlt destination) lacks its
    driver or a credential that dlt would ask for at the first connection, or cannot be reached
    (one connection, see :func:`check_reachable`)."""
    from dlt.common.configuration.exceptions import ConfigFieldMissingException
    from dlt.common.configuration.resolve import inject_section
    from dlt.common.configuration.specs.config_section_context import ConfigSectionContext
    from dlt.common.destination import Destination

    from dlt.common.destination.exceptions import UnknownDestinationModule

    try:
        reference = Destination.from_reference(destination)
    except UnknownDestinationModule as error:
        raise unknown_destination(destination) from error
    name = reference.destination_name
    try:
        reference.client_class  # imports the driver
    except ImportError as error:
        kind = reference.destination_type.rsplit(".", 1)[-1]
        install = f"algolia-profiles[{EXTRAS[kind]}]" if kind in EXTRAS else f"dlt[{kind}]"
        raise ConfigurationError(f"destination {name} needs its driver ({error}): pip install '{install}'") from None
    initial = reference.spec()
    initial.dataset_name = dataset_name
    try:
        with inject_section(ConfigSectionContext(pipeline_name=pipeline_name)):
            config = reference.configuration(initial)
    except ConfigFieldMissingException as error:
        raise ConfigurationError(missing_settings(error, f"destination {name}")) from None
    check_reachable(reference, config, pipeline_name)


def check_reachable(reference: Any, config: Any, pipeline_name: str) -> None:
    """Connects once with dlt's own client (``config``: the resolved destination configuration) and
    raises :class:`ConfigurationError` when the host cannot be reached. BigQuery's client connects
    lazily, so it makes one cheap call (a page of one dataset), retried within the destination's
    ``retry_deadline``: the queries dlt runs through the DB-API retry for up to ten minutes."""
    from dlt.common.schema import Schema

    try:
        sql_client = reference.client(Schema(pipeline_name), config).sql_client
    except AttributeError:  # a destination without SQL (files, a custom sink): nothing to reach
        return
    try:
        with _driver_warnings_quiet(), sql_client as client:
            if reference.destination_type.endswith(".bigquery"):
                _list_one_dataset(client.native_connection, config)
    except Exception as error:  # noqa: BLE001 - only a connection failure is reported here
        unreachable = connection_failure(error)
        if unreachable is None:
            raise
        raise ConfigurationError(
            f"cannot connect to the destination {reference.destination_name} ({unreachable}): check its"
            f" host, port and credentials in .dlt/secrets.toml [destination.{reference.destination_name}"
            ".credentials], and that it is running and reachable from here"
        ) from None


def _list_one_dataset(bigquery_client: Any, config: Any) -> None:
    from google.cloud import bigquery

    retry = bigquery.DEFAULT_RETRY.with_deadline(config.retry_deadline)
    datasets = bigquery_client.list_datasets(max_results=1, retry=retry, timeout=config.http_timeout)
    next(iter(datasets.pages), None)


#: loggers of the drivers that log each retry of a connection as a WARNING
_DRIVER_LOGGERS = ("snowflake.connector", "urllib3", "google")


@contextmanager
def _driver_warnings_quiet() -> Iterator[None]:
    """Unless INFO is on (``-v``), the drivers' retry warnings stay out of the one-line error."""
    loggers = [logging.getLogger(name) for name in _DRIVER_LOGGERS]
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield
        return
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def missing_settings(error: Any, what: str) -> str:
    """One line naming the settings dlt could not find (``error``: its ConfigFieldMissingException),
    with where to set each: a TOML section and key, or an environment variable."""
    places = []
    for field, traces in error.traces.items():
        for trace in traces:
            nested = getattr(trace, "traces", None)
            if nested is not None:  # a nested configuration (credentials) with fields of its own
                places += [_place(sub, sub_traces) for sub, sub_traces in nested.items()]
                break
        else:
            places.append(_place(field, traces))
    return f"{what} is not configured: set {'; '.join(places)} (in .dlt/secrets.toml, or as environment variables)"


def _place(field: str, traces: list[Any]) -> str:
    # the most specific section, leaving out the one dlt derives from this package's module name
    # (sources.algolia_profiles_source.*): the documented one is sources.algolia_profiles
    module = __name__.split(".")[0]
    candidates = [list(getattr(t, "sections", ())) for t in traces]
    sections = max((s for s in candidates if module not in s), key=len, default=[])
    toml = f"[{'.'.join(sections)}] {field}" if sections else field
    return f"{toml} ({'__'.join([*sections, field]).upper()})"


def unknown_destination(destination: Any) -> ConfigurationError:
    return ConfigurationError(
        f"unknown destination {destination!r}: use a dlt destination name such as duckdb,"
        " postgres, bigquery, snowflake or motherduck (and install its extra, e.g."
        " pip install 'algolia-profiles[postgres]')"
    )


def connection_failure(error: BaseException) -> str | None:
    """The driver's first line when ``error`` comes from a destination that could not be reached
    (wrong host or port, server down, network); None for any other error."""
    for cause in causes(error):
        if type(cause).__name__ in ("OperationalError", "ConnectionError", "TransportError") or isinstance(
            cause, ConnectionError
        ):
            return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return None
