"""A destination checked before a pipeline is made: its driver installed and its credentials
configured, each failure one line that says what to install or set (nothing is written first)."""

from __future__ import annotations

from typing import Any

from ..exceptions import ConfigurationError, causes

EXTRAS = {"postgres": "postgres", "snowflake": "snowflake", "bigquery": "bigquery", "motherduck": "motherduck"}


def check_destination(destination: Any, pipeline_name: str, dataset_name: str) -> None:
    """Raises :class:`ConfigurationError` when ``destination`` (a name or a dlt destination) lacks its
    driver or a credential that dlt would ask for at the first connection."""
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
            reference.configuration(initial)
    except ConfigFieldMissingException as error:
        raise ConfigurationError(missing_settings(error, f"destination {name}")) from None


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
