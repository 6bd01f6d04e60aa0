"""Affinity segments: audience definitions compiled to SQL and built inside the warehouse.

See docs/audiences.md for the definition language and the tables a build writes.
"""

from ..warehouse.target import static_target
from .build import BuildResult, PlanResult, build_models, build_segments, load_audiences, plan_segments
from .compiler import segment_statements
from .models import model_statements
from .definitions import AudienceFile, DefinitionError, load_definitions, parse_definitions

__all__ = [
    "AudienceFile",
    "BuildResult",
    "PlanResult",
    "DefinitionError",
    "build_models",
    "build_segments",
    "load_audiences",
    "load_definitions",
    "model_statements",
    "parse_definitions",
    "plan_segments",
    "segment_statements",
    "static_target",
]
