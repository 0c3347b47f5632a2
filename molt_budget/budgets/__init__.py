"""Budget changes as reviewed YAML edits: `bump` (re-set one KPI) and `ratchet` (tighten).

Both edit budgets.yaml in place so that the pull request diff shows only the KPI's lines;
the gate on what such an edit may do lives in molt_budget.compare.budget_changes.

Nothing is imported here: `check` reads only `advice`, and the editors (ruamel, difflib) would
cost every check their import.
"""
