"""Undo the cheap disguises attackers wrap around a prompt before the detectors read it.

Injection and jailbreak text is often hidden from keyword lists and classifiers by encoding it
(base64, hex, rot13), spelling it in leetspeak (``1gn0r3``), swapping Latin letters for Cyrillic
or Greek look-alikes, or salting it with invisible characters (zero-width spaces, Unicode "tag"
characters that render as nothing). :func:`normalize` strips and folds all of that and returns
the readable *variants* of the text worth scanning, each tagged with the transforms that made it,
so a detector can scan every variant and report which disguise it saw through.

Pure Python, no imports beyond the standard library; a 1,000-character prompt takes well under a
millisecond when nothing is encoded.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["Variant", "clean", "normalize"]

# Zero-width and formatting characters, bidi controls, the Unicode "tag" block (U+E0000..E007F,
# used for ASCII smuggling), variation selectors and the soft hyphen: invisible when rendered.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
# Unicode tag characters spell ASCII (U+E0041 = "A"): decode them rather than only dropping them.
_TAGS = re.compile("[\U000e0020-\U000e007e]+")

# Look-alike letters (Cyrillic, Greek, a few others) that NFKC leaves alone.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h",
    "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M", "О": "O",
    "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "Υ": "Y", "У": "Y",
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "κ": "k", "ι": "i", "τ": "t", "υ": "u", "ε": "e", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Χ": "X",
    "ı": "i", "ȷ": "j", "ℓ": "l", "⍺": "a",
})
_NON_ASCII_LETTER = re.compile(r"[^\x00-\x7f]")

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                       "@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
# A word mixing letters with leet digits/symbols: "1gn0re", "pr3v10us", "s@fety".
_LEET_WORD = re.compile(r"(?<![\w@$!|+])(?:[\w@$!|+]*[a-zA-Z][013457@$!|+]+[a-zA-Z][\w@$!|+]*|"
                        r"[0134578@$]+[a-zA-Z]{2,}[\w@$!|+]*)(?![\w@$!|+])")

_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_B64URL = re.compile(r"(?<![A-Za-z0-9_\-=])[A-Za-z0-9_\-]{16,}={0,2}(?![A-Za-z0-9_\-=])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[\s:]?){8,}(?![0-9A-Fa-f])")
_COMMON = re.compile(r"\b(?:the|and|you|your|to|of|is|are|all|ignore|instructions|previous|now|with|"
                     r"what|this|that|for|not|system|prompt|tell|me|how|make)\b", re.I)


@dataclass(frozen=True, slots=True)
class Variant:
    """One readable form of the input: the ``text`` to scan and the ``transforms`` that produced it
    (empty for the input as given). ``decoded`` marks a variant that is only a decoded fragment."""

    text: str
    transforms: tuple[str, ...] = ()
    decoded: bool = False


@dataclass(slots=True)
class _Out:
    variants: list[Variant] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, text: str, transforms: tuple[str, ...], decoded: bool = False) -> None:
        key = text.strip()
        if key and key not in self.seen:
            self.seen.add(key)
            self.variants.append(Variant(text, transforms, decoded))


def _printable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not s or sum(ch.isprintable() or ch in "\n\t\r" for ch in s) < 0.95 * len(s):
        return None
    if sum(ch.isalpha() or ch == " " for ch in s) < 0.6 * len(s):
        return None
    return s


def _decode_b64(token: str) -> str | None:
    t = token.rstrip("=")
    pad = "=" * (-len(t) % 4)
    try:
        if "-" in t or "_" in t:
            raw = base64.urlsafe_b64decode(t + pad)
        else:
            raw = base64.b64decode(t + pad, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _printable(raw)


def _decode_hex(token: str) -> str | None:
    try:
        raw = bytes.fromhex(re.sub(r"[\s:]", "", token))
    except ValueError:
        return None
    return _printable(raw)


def clean(text: str) -> tuple[str, tuple[str, ...]]:
    """NFKC-fold ``text``, decode Unicode tag characters, drop invisible characters and map
    look-alike letters to Latin. Returns the cleaned text and the transforms that changed it."""
    fired: list[str] = []
    if _TAGS.search(text):
        text = _TAGS.sub(lambda m: " " + "".join(chr(ord(c) - 0xE0000) for c in m.group()) + " ", text)
        fired.append("unicode-tags")
    stripped = _INVISIBLE.sub("", text)
    if stripped != text:
        fired.append("invisible")
        text = stripped
    if not text.isascii():
        folded = unicodedata.normalize("NFKC", text)
        if folded != text:
            fired.append("nfkc")
            text = folded
        if _NON_ASCII_LETTER.search(text):
            mapped = text.translate(_CONFUSABLES)
            if mapped != text:
                fired.append("homoglyphs")
                text = mapped
    return text, tuple(fired)


def normalize(text: str, max_variants: int = 6) -> list[Variant]:
    """The variants of ``text`` worth scanning, the cleaned input first.

    Variants: the cleaned text (:func:`clean`); a leetspeak-folded copy when words mix letters and
    digits; a rot13 copy when rot13 reads more like English than the input; and each base64 or hex
    run that decodes to readable text (decoded fragments are also spliced back into the cleaned
    text). At most ``max_variants`` are returned.
    """
    out = _Out()
    base, fired = clean(text)
    out.add(base, fired)

    spliced = base
    decoded_any: list[str] = []
    for rx, name, dec in ((_B64, "base64", _decode_b64), (_B64URL, "base64", _decode_b64),
                          (_HEX, "hex", _decode_hex)):
        for m in rx.finditer(base):
            token = m.group()
            if name == "base64" and token.isalpha() and (token.islower() or token.isupper()):
                continue  # a long plain word, not base64
            plain = dec(token)
            if plain is not None:
                inner, inner_fired = clean(plain)
                out.add(inner, (*fired, name, *inner_fired), decoded=True)
                spliced = spliced.replace(token, inner)
                decoded_any.append(name)
    if decoded_any:
        out.add(spliced, (*fired, *dict.fromkeys(decoded_any)))

    leet_words = [w for w in _LEET_WORD.findall(base) if len(w) <= 20]
    if leet_words:
        folded = _LEET_WORD.sub(lambda m: m.group().translate(_LEET) if len(m.group()) <= 20 else m.group(), base)
        if folded != base:
            out.add(folded, (*fired, "leetspeak"))

    common_before = len(_COMMON.findall(base))
    rot = codecs.encode(base, "rot13")
    if len(_COMMON.findall(rot)) > max(1, common_before):
        out.add(rot, (*fired, "rot13"))
    return out.variants[:max_variants]
