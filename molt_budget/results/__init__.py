"""Results: what a run measured (samples, KPI values, verdicts), on disk and in history."""
