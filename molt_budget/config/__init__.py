"""Config: budgets.yaml → validated typed records (lanes, KPIs, settings)."""

from molt_budget.config.loader import load_config
from molt_budget.config.model import Config, Kpi, Lane, Settings

__all__ = ["Config", "Kpi", "Lane", "Settings", "load_config"]
