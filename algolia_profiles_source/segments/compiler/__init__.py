"""SQL for the audiences, generated as sqlglot trees and rendered per warehouse.

Templates are constants in sqlglot's neutral dialect; audience values (affinity names and values,
user IDs, index names) only ever enter as sqlglot literals, so ``O'Brien'; drop table users; --`` is a
value like any other. Warehouse differences live in :mod:`...warehouse.dialects`.

One module per step: :mod:`.context` (what a compilation is for), :mod:`.flags` (the per-user
flags pass), :mod:`.predicates` (a rule as a condition), :mod:`.members` (one audience's members),
:mod:`.plan` (the read-only plan query) and :mod:`.statements` (a whole build).
"""

from .context import CompileContext
from .flags import MASK_BITS, USER_COLUMNS, affinity_condition, flags_select
from .members import audience_insert, audience_select
from .plan import plan_select
from .predicates import history_predicate, needs_affinity, rule_predicate
from .statements import BUILDS_COLUMNS, EVENTS_COLUMNS, MEMBERS_COLUMNS, segment_statements

__all__ = [
    "BUILDS_COLUMNS",
    "EVENTS_COLUMNS",
    "MASK_BITS",
    "MEMBERS_COLUMNS",
    "USER_COLUMNS",
    "CompileContext",
    "affinity_condition",
    "audience_insert",
    "audience_select",
    "flags_select",
    "history_predicate",
    "needs_affinity",
    "plan_select",
    "rule_predicate",
    "segment_statements",
]
