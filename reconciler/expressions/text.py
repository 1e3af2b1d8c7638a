"""Text functions whose rules are tables or .NET behaviour: NormalizeDiacritics, PCase, culture-aware case."""

from __future__ import annotations

import re
import unicodedata

# NormalizeDiacritics' fixed table, as Microsoft publishes it: the replacement, then the characters it replaces
# (some are a letter plus combining marks). Characters outside the table are left as they are.
_DIACRITICS = {
    "a": "ä à â ã å á ą ă ā ā́ ā̀ ā̂ ā̃ ǟ ā̈ ǡ a̱ å̄",
    "A": "Ä À Â Ã Å Á Ą Ă Ā Ā́ Ā̀ Ā̂ Ā̃ Ǟ Ā̈ Ǡ A̱ Å̄",
    "ae": "æ ǣ", "AE": "Æ Ǣ",
    "c": "ç č ć c̄ c̱", "C": "Ç Č Ć C̄ C̱",
    "d": "ď d̄ ḏ", "D": "Ď D̄ Ḏ",
    "e": "ë è é ê ę ě ė ē ḗ ḕ ē̂ ē̃ ê̄ e̱ ë̄ e̊̄",
    "E": "Ë È É Ê Ę Ě Ė Ē Ḗ Ḕ Ē̂ Ē̃ Ê̄ E̱ Ë̄ E̊̄",
    "g": "ğ ḡ g̱", "G": "Ğ Ḡ G̱",
    "i": "ï î ì í \u0131 ī ī́ ī̀ ī̂ ī̃ i̱", "I": "Ï Î Ì Í İ Ī Ī́ Ī̀ Ī̂ Ī̃ I̱",
    "l": "ľ ł l̄ ḹ ḻ", "L": "Ł Ľ L̄ Ḹ Ḻ",
    "n": "ñ ń ň n̄ ṉ", "N": "Ñ Ń Ň N̄ Ṉ",
    "o": "ö ò ő õ ô ó ō ṓ ṑ ō̂ ō̃ ȫ ō̈ ǭ ȭ ȱ o̱",
    "O": "Ö Ò Ő Õ Ô Ó Ō Ṓ Ṑ Ō̂ Ō̃ Ȫ Ō̈ Ǭ Ȭ Ȱ O̱",
    "oe": "ø ø̄ œ̄", "OE": "Ø Ø̄ Œ̄",
    "r": "ř r̄ ṟ ṝ", "R": "Ř R̄ Ṟ Ṝ",
    "ss": "ß",
    "s": "š ś ș ş s̄ s̱", "S": "Š Ś Ș Ş S̄ S̱",
    "t": "ť ț t̄ ṯ", "T": "Ť Ț T̄ Ṯ",
    "u": "ü ù û ú ů ű ū ū́ ū̀ ū̂ ū̃ u̇̄ ǖ ṻ ṳ̄ u̱",
    "U": "Ü Ù Û Ú Ů Ű Ū Ū́ Ū̀ Ū̂ Ū̃ U̇̄ Ǖ Ṻ Ṳ̄ U̱",
    "y": "ÿ ý ȳ ȳ́ ȳ̀ ȳ̃ y̱", "Y": "Ÿ Ý Ȳ Ȳ́ Ȳ̀ Ȳ̃ Y̱",
    "z": "ź ž ż z̄ ẕ", "Z": "Ź Ž Ż Z̄ Ẕ",
}
_REPLACEMENTS = {
    unicodedata.normalize("NFC", variant): plain
    for plain, variants in _DIACRITICS.items()
    for variant in variants.split()
}
_DIACRITIC_PATTERN = re.compile("|".join(re.escape(k) for k in sorted(_REPLACEMENTS, key=len, reverse=True)))


def dotnet_regex(pattern: str) -> re.Pattern[str]:
    """A .NET regular expression in Python's dialect: named groups ``(?<name>...)`` become ``(?P<name>...)``.

    Raises ``re.error`` when the pattern is invalid in both.
    """
    return re.compile(re.sub(r"\(\?<(?![=!])", "(?P<", pattern))


def normalize_diacritics(text: str) -> str:
    composed = unicodedata.normalize("NFC", text)
    return _DIACRITIC_PATTERN.sub(lambda m: _REPLACEMENTS[m.group(0)], composed)


def _is_default_separator(char: str) -> bool:
    """.NET ToTitleCase's word separators: spaces, controls, punctuation and symbols (not the apostrophe)."""
    if char in "'\u2019":
        return False
    return unicodedata.category(char)[0] in "ZCPS"


def proper_case(text: str, separators: str | None = None) -> str:
    """PCase: the first letter of each word upper case, every other letter lower case."""
    out: list[str] = []
    start_of_word = True
    for char in text:
        separator = char in separators if separators is not None else _is_default_separator(char)
        if separator:
            out.append(char)
            start_of_word = True
        else:
            out.append(_upper(char) if start_of_word else _lower(char))
            start_of_word = False
    return "".join(out)


def _upper(char: str) -> str:
    upper = char.upper()
    return upper if len(upper) == 1 else char  # .NET keeps the length: 'ß' stays 'ß'


def _lower(char: str) -> str:
    lower = char.lower()
    return lower if len(lower) == 1 else char


def to_lower(text: str, culture: str | None = None) -> str:
    if culture and culture.lower().split("-")[0] in ("tr", "az"):
        text = text.replace("I", "\u0131").replace("İ", "i")
    return "".join(_lower(c) for c in text)


def to_upper(text: str, culture: str | None = None) -> str:
    if culture and culture.lower().split("-")[0] in ("tr", "az"):
        text = text.replace("i", "İ").replace("\u0131", "I")
    return "".join(_upper(c) for c in text)
