"""Reliability: bad input, faults, long use and resume (issue 7)."""
