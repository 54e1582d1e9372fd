"""Text normalisation shared by entity linking, relation matching and answer metrics."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalize_name(text: str) -> str:
    """Lowercase, strip accents and punctuation, collapse spaces: 'Amélie (film)' -> 'amelie film'."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("_", " ").lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def tokenize_with_spans(text: str) -> list[tuple[str, int, int]]:
    """Word tokens of `text` (normalised) with their character spans in the original."""
    tokens = []
    for match in re.finditer(r"[\w][\w'’.-]*", text, re.UNICODE):
        normalized = normalize_name(match.group())
        if normalized:
            # A token like "o'brien" normalises to two words; keep them as one linking unit.
            tokens.append((normalized, match.start(), match.end()))
    return tokens
