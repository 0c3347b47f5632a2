"""Budget changes as reviewed YAML edits: `bump` (re-set one KPI) and `ratchet` (tighten).

Both edit budgets.yaml in place so that the pull request diff shows only the KPI's lines;
the gate on what such an edit may do lives in molt_budget.compare.budget_changes.
"""

from molt_budget.budgets.edit import BumpResult, bump_kpi, set_kpi_fields
from molt_budget.budgets.ratchet import Ratchet, apply_ratchets, propose_ratchets

__all__ = ["BumpResult", "Ratchet", "apply_ratchets", "bump_kpi", "propose_ratchets", "set_kpi_fields"]
