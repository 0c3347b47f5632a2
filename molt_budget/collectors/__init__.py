"""Collectors: turn what a lane run left behind into metric values."""
