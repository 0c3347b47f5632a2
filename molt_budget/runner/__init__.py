"""Runner: executes lanes (warm-ups, repeats, retries) and records every attempt."""
