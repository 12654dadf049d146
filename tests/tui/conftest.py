"""The Pilot tests' pace. Textual's Pilot waits after every key press and every ``pause()`` until
the app looks idle: it sleeps in slices of 20 ms until one passes with under 1 ms of CPU. The
wizard's tests press thousands of keys, and each press slept at least one whole slice while the
core idled (a third of these files' time on one core, measured). Slices of 5 ms with the same
idle share (5 %) keep the rule and its meaning; the tests' own waits (``helpers.wait_for``) say
what they wait for and never rely on a pause's length."""

from __future__ import annotations

import textual._wait

textual._wait.SLEEP_GRANULARITY = 1 / 200
textual._wait.SLEEP_IDLE = textual._wait.SLEEP_GRANULARITY / 20.0
