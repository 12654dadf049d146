"""One translation layer for every part of slmops: stdlib gettext over the catalogs in
``wizard_steps/locale`` (made with Babel, see scripts/translations.py), the language chosen by
``--lang``, else ``SLMOPS_LANG``, else the locale (LC_ALL, LC_MESSAGES, LANG), else English.

Text is translated where it is shown (``_()``); constants evaluated at import are marked with
``N_()`` and translated at use, so switching the language inside the TUI redraws everything.
Machine output (JSON, exit codes, file formats) never goes through here: ``using("en")`` runs a
block in English on one thread, for --json. Turkish text needs its own case rules (dotted and
dotless i), alphabet order and decimal comma; the helpers below do those.
"""

from __future__ import annotations

import gettext as _gettext
import locale
import os
import sys
import threading
import unicodedata
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

DOMAIN = "slmops"
LOCALE_DIR = Path(__file__).parents[1] / "locale"
ENV = "SLMOPS_LANG"
DEFAULT = "en"
LANGUAGES = {"en": "English", "tr": "Türkçe"}
_LOCALE_VARS = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX precedence: the first one set wins

_language: str | None = None  # None: not chosen yet, detected on first use
_explicit = False  # chosen by --lang (beats an answers file)
_local = threading.local()  # a per-thread override (using)
_catalogs: dict[str, _gettext.NullTranslations] = {}


def N_(message: str) -> str:
    """Mark a constant for extraction; it is translated where it is shown, with ``_()``."""
    return message


def NP_(context: str, message: str) -> str:
    """Like N_, for a message shown with ``pgettext(context, ...)`` (one English word, two uses:
    the step "Deploy" and the button "Deploy" are different words in Turkish)."""
    return message


def normalize(value: str | None) -> str | None:
    """"tr", "tr_TR", "tr-TR", "tr_TR.UTF-8" -> "tr"; None for a language slmops does not speak."""
    if not value:
        return None
    code = value.strip().split(".")[0].split("@")[0].replace("-", "_").split("_")[0].lower()
    return code if code in LANGUAGES else None


def detect_language(environ: Mapping[str, str] | None = None) -> str:
    """SLMOPS_LANG, else the locale's language (C or POSIX, or one not spoken: English)."""
    environ = os.environ if environ is None else environ
    chosen = normalize(environ.get(ENV))
    if chosen:
        return chosen
    for name in _LOCALE_VARS:
        value = environ.get(name, "").strip()
        if value:
            return normalize(value) or DEFAULT
    if environ is os.environ and sys.platform == "win32":  # Windows sets no LANG: ask the system

        name = locale.getlocale()[0] or ""  # "tr_TR" or "Turkish_Türkiye"
        return normalize(name) or ("tr" if name.lower().startswith("turkish") else DEFAULT)
    return DEFAULT


def set_language(lang: str | None = None, explicit: bool = True) -> str:
    """Use ``lang`` ("en" or "tr") from now on; None detects it again from the environment.
    ``explicit``: chosen on the command line, so an answers file does not change it."""
    global _language, _explicit
    chosen = detect_language() if lang is None else normalize(lang)
    if chosen is None:
        raise ValueError(f"unknown language {lang!r}; slmops speaks {', '.join(LANGUAGES)}")
    _language, _explicit = chosen, explicit and lang is not None
    return chosen


def chosen_explicitly() -> bool:
    return _explicit


def current_language() -> str:
    override = getattr(_local, "language", None)
    if override:
        return override
    if _language is None:
        set_language(None)
    assert _language is not None
    return _language


@contextmanager
def using(lang: str) -> Iterator[None]:
    """Run a block in ``lang`` on this thread only (other threads keep theirs): --json values."""
    before = getattr(_local, "language", None)
    _local.language = normalize(lang) or DEFAULT
    try:
        yield
    finally:
        _local.language = before


def catalog(lang: str | None = None) -> _gettext.NullTranslations:
    lang = lang or current_language()
    if lang not in _catalogs:
        _catalogs[lang] = (_gettext.NullTranslations() if lang == DEFAULT else
                           _gettext.translation(DOMAIN, LOCALE_DIR, [lang], fallback=True))
    return _catalogs[lang]


def gettext(message: str) -> str:
    """``message`` in the current language (itself when it has no translation)."""
    return catalog().gettext(message) if message else message


_ = gettext


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalog().ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return catalog().pgettext(context, message) if message else message


# --- numbers ------------------------------------------------------------------------------------


def number(value: float, digits: int | None = 0, grouping: bool = False) -> str:
    """``value`` with ``digits`` decimals (None: as Python writes it, 0.7) as the language writes
    it: 1.5 / 1,5 (and 1,234.5 / 1.234,5 with ``grouping``)."""
    if digits is None:
        text = str(value)
    else:
        text = f"{value:,.{digits}f}" if grouping else f"{value:.{digits}f}"
    if current_language() == "tr":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def percent(value: float, digits: int = 0, sign: bool = False, space: bool = True) -> str:
    """A percentage (``value`` already ×100): "13.6 %" in English, "%13,6" in Turkish (the sign
    goes first there); ``sign`` writes +/-, ``space`` the English "13.6 %" rather than "13.6%"."""
    text = number(abs(value) if sign else value, digits)
    lead = ("+" if value >= 0 else "-") if sign else ""
    if current_language() == "tr":
        return f"{lead}%{text}"
    return f"{lead}{text}{' %' if space else '%'}"


# --- Turkish text -------------------------------------------------------------------------------

_TR_UPPER = str.maketrans({"i": "İ", "ı": "I"})
_TR_LOWER = str.maketrans({"I": "ı", "İ": "i"})
TR_ALPHABET = "abcçdefgğhıijklmnoöpqrsştuüvwxyz"  # q, w, x where the Latin alphabet has them
_TR_ORDER = {letter: index for index, letter in enumerate(TR_ALPHABET)}


def tr_upper(text: str) -> str:
    """Upper case the Turkish way: i -> İ, ı -> I (str.upper gives I for both)."""
    return text.translate(_TR_UPPER).upper()


def tr_lower(text: str) -> str:
    """Lower case the Turkish way: I -> ı, İ -> i (str.lower gives i and i + a combining dot)."""
    return text.translate(_TR_LOWER).lower()


def upper(text: str) -> str:
    """Upper case in the current language (for words, never for technical names such as int4)."""
    return tr_upper(text) if current_language() == "tr" else text.upper()


def lower(text: str) -> str:
    return tr_lower(text) if current_language() == "tr" else text.lower()


def fold(text: str, lang: str | None = None) -> str:
    """Case folded for search, one character for one (so match positions stay valid): in
    Turkish "IŞIK" and "ışık" match, and "İzmir" and "izmir"."""
    if (lang or current_language()) == "tr":
        return tr_lower(text)
    return text.translate({0x130: "i"}).lower()


def matches(query: str, text: str, lang: str | None = None) -> bool:
    """True when ``query`` occurs in ``text``, case folded for the language."""
    return fold(query, lang) in fold(text, lang)


def _base_letter(char: str) -> str:
    """â -> a, î -> i, û -> u (circumflexes are not letters of their own in Turkish)."""
    return unicodedata.normalize("NFD", char)[0]


def sort_key(text: str, lang: str | None = None) -> tuple[tuple[tuple[int, int], ...], str]:
    """A key that sorts names in the language's alphabet: in Turkish ç after c, ğ after g, ı
    before i, ö after o, ş after s, ü after u; case second, the exact text last."""
    if (lang or current_language()) != "tr":
        folded = text.casefold()
        return tuple((0, ord(c)) for c in folded), text
    weights = []
    for char in tr_lower(text):
        letter = char if char in _TR_ORDER else _base_letter(char)
        if letter in _TR_ORDER:
            weights.append((2, _TR_ORDER[letter]))
        elif char.isdigit():
            weights.append((1, ord(char)))
        else:
            weights.append((0 if not char.isalpha() else 3, ord(char)))
    return tuple(weights), text


def sorted_names(names: list[str], lang: str | None = None) -> list[str]:
    return sorted(names, key=lambda name: sort_key(name, lang))
