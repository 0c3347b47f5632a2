"""Command modules registered by molt_budget.cli.EXTENSIONS."""
