"""One screen per wizard step (tui.app.SCREENS_BY_STEP maps steps to them)."""
