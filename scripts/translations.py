"""Refresh the translations in one go: extract the messages of tui/ and wizard_steps/ into
wizard_steps/locale/slmops.pot, merge them into each language's slmops.po, compile the .mo files
that ship in the package (so an install needs no Babel).

    .venv/bin/python scripts/translations.py            # extract, update, compile
    .venv/bin/python scripts/translations.py --check    # also fail on untranslated messages
    .venv/bin/python scripts/translations.py --init xx  # start a new language

Needs Babel (the ``dev`` extra). New or changed English messages arrive in each .po with an empty
msgstr; translate them, then run this again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "wizard_steps" / "locale"
TEMPLATE = LOCALE / "slmops.pot"
DOMAIN = "slmops"


def pybabel(*args: str) -> None:
    command = [sys.executable, "-m", "babel.messages.frontend", *args]
    print("$ pybabel " + " ".join(args), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def extract(output: Path = TEMPLATE) -> None:
    """The messages marked with _(), N_(), NP_() (with a context) and ngettext() in tui/ and
    wizard_steps/."""
    output.parent.mkdir(parents=True, exist_ok=True)
    pybabel("extract", "-F", "babel.cfg", "-o", str(output), "--project", "slmops",
            "--copyright-holder", "slmops", "--add-location", "file", "--sort-by-file",
            "-c", "TRANSLATORS:", "--no-wrap", "-k", "NP_:1c,2", "tui", "wizard_steps")


def languages() -> list[str]:
    return sorted(p.parent.parent.name for p in LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def untranslated(language: str) -> list[str]:
    from babel.messages.pofile import read_po

    with (LOCALE / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as handle:
        catalog = read_po(handle)
    return [str(m.id) for m in catalog if m.id and (m.fuzzy or not (all(m.string) if isinstance(
        m.string, tuple) else m.string))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", metavar="LANG", help="create the catalog of a new language")
    parser.add_argument("--check", action="store_true", help="fail when a message is untranslated")
    args = parser.parse_args()
    extract()
    if args.init:
        pybabel("init", "-D", DOMAIN, "-i", str(TEMPLATE), "-d", str(LOCALE), "-l", args.init,
                "--no-wrap")
    pybabel("update", "-D", DOMAIN, "-i", str(TEMPLATE), "-d", str(LOCALE), "--no-fuzzy-matching",
            "--ignore-obsolete", "--no-wrap")
    pybabel("compile", "-D", DOMAIN, "-d", str(LOCALE), "--statistics")
    missing = {language: untranslated(language) for language in languages()}
    for language, ids in missing.items():
        for message in ids:
            print(f"{language}: untranslated: {message!r}")
    return 1 if args.check and any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
