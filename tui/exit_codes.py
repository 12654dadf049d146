"""Exit codes of every slmops command, in one place."""

OK = 0
STEP_FAILED = 1
BAD_INPUT = 2
INTERRUPTED = 130
