"""Judging a converted model against its source on this machine: fidelity on the evaluation
text, domain queries, the checklist, comparisons of precisions and the fix for a failure."""
