"""molt-budget: a CI regression-budget gate for compiler build cost."""

__version__ = "0.1.0"
