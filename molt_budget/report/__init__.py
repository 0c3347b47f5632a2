"""Reporters: the terminal table now; PR comment, check run and job summary build on it."""
