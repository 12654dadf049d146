"""One screen per wizard step (tui.steps.STEP_TABLE maps steps to them)."""
