"""Reliability suite: fault injection against real worker processes (issue 7)."""
