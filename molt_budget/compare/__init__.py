"""Compare: turn measured values into verdicts against budgets (and, later, a baseline)."""
