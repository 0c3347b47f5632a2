from molt_budget.cli import run

run()
