"""What the SQL of one build, plan or dbt project is compiled for (:class:`CompileContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlglot import exp

from ...tables import MEMBERS_NEXT, STG_USERS, WORK_FLAGS
from ...warehouse import dialects
from ...warehouse.target import Target
from ..audience import AffinityRule
from ..models import table_ref


@dataclass
class CompileContext:
    """What the SQL of one build (or plan, or dbt project) is compiled for: the warehouse, the
    instant "within N days" counts back from, and where the live users, the flags and each
    audience's members are read from (the build's tables by default; CTEs or dbt models instead)."""

    target: Target
    as_of: datetime
    # each affinity rule's flag: its bit number across the mask columns
    flags: dict[AffinityRule, int] = field(default_factory=dict)
    # the alias the audience being compiled reads the flags table under
    flag_alias: str = "f"
    # a plan reads the live users, the flags and each audience's members from CTEs of these names
    # instead of the staging view and the build's tables
    users_cte: str | None = None
    flags_cte: str | None = None
    members_ctes: dict[str, str] | None = None

    def since(self, days: float) -> exp.Expression:
        return dialects.timestamp(self.as_of - timedelta(days=days))

    def users_table(self, alias: str | None = None) -> exp.Expression:
        """The live users (the staging view, or the plan's CTE)."""
        if self.users_cte:
            table = exp.to_table(self.users_cte)
            return exp.alias_(table, alias, table=True) if alias else table
        return table_ref(self.target, STG_USERS, alias)

    def flags_table(self) -> exp.Table:
        if self.flags_cte:
            return exp.to_table(self.flags_cte)
        return dialects.work_table(self.target, WORK_FLAGS)

    def members_of(self, audience: str) -> exp.Table:
        """Where the members of ``audience`` (built earlier in dependency order) are read from."""
        if self.members_ctes is not None:
            return exp.to_table(self.members_ctes[audience])
        return self.target.table(MEMBERS_NEXT)
