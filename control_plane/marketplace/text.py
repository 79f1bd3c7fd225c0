"""Italian text as people type it: one normalisation for indexing and for querying.

Both search backends (SQLite FTS5 and PostgreSQL full-text search) see only what this module
produces: lowercase, unaccented tokens without stop words, each followed by its Snowball stem
when that differs. A query word matches when any indexed token starts with the word or with
its stem, so "pitture" finds "pittura" (same stem), "imbianc" finds "imbiancatura" (prefix)
and "citta" finds "città" (accents folded on both sides). The backends only do prefix
matching on plain tokens, which is why they give the same results.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer  # type: ignore[import-untyped]

# Longer tokens are cut: nobody types them, and they bloat the index.
MAX_TOKEN = 40
# At most this many words of a query count; the rest is ignored (search boxes, not essays).
MAX_QUERY_TERMS = 8

_WORD = re.compile(r"[^\W_]+")

# Italian function words (already unaccented), plus the elided forms an apostrophe leaves
# behind ("dell'armadio" -> "dell", "armadio"). They carry no meaning in a search.
STOPWORDS = frozenset(
    """
    a ad al all alla alle allo ai agli anche c che chi ci coi col come con contro cui d da dai
    dal dall dalla dalle dallo dagli degli dei del dell della delle dello di dov dove e ed
    gli ha hanno ho i il in l la le lo loro ma mi mia mie miei mio ne negli nei nel nell nella
    nelle nello noi non nostro o per perche piu po qual quale quali quanta quanto quella quelle
    quelli quello questa queste questi questo se si sia siamo sono su sua sue sui sul sull
    sulla sulle sullo suo suoi te ti tra tu tua tue tuo tuoi un una uno vi voi
    """.split()
)


def fold(text: str) -> str:
    """``text`` lowercased with accents removed ("Città" -> "citta")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def words(text: str) -> list[str]:
    """The folded words of ``text``, stop words included (for area names and keys)."""
    return [w[:MAX_TOKEN] for w in _WORD.findall(fold(text))]


def tokens(text: str) -> list[str]:
    """The folded words of ``text`` without stop words."""
    return [w for w in words(text) if w not in STOPWORDS]


@lru_cache(maxsize=1)
def _stemmer() -> object:
    return snowballstemmer.stemmer("italian")


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """The Italian Snowball stem of a folded token (numbers are left alone)."""
    if not token.isalpha() or len(token) < 4:
        return token
    stemmed: str = _stemmer().stemWord(token)  # type: ignore[attr-defined]
    # A stem of one or two letters would match half the dictionary as a prefix.
    return stemmed if len(stemmed) >= 3 else token


def index_text(*parts: str | Iterable[str]) -> str:
    """The text a backend indexes for a document: each token, then its stem if different."""
    out: list[str] = []
    for part in parts:
        pieces = [part] if isinstance(part, str) else list(part)
        for piece in pieces:
            for token in tokens(piece):
                out.append(token)
                stemmed = stem(token)
                if stemmed != token:
                    out.append(stemmed)
    return " ".join(out)


@dataclass(frozen=True)
class QueryTerm:
    """One word of a query: a document matches when a token starts with any variant."""

    word: str
    variants: tuple[str, ...]


def query_terms(query: str) -> list[QueryTerm]:
    """The terms of a search query; every term must match (AND), each by prefix."""
    found = tokens(query)
    if not found:
        # Only stop words ("la"): someone is still typing, so treat them as prefixes
        # ("la" -> "lavaggio") rather than returning everything or nothing.
        found = words(query)
    terms: list[QueryTerm] = []
    seen: set[str] = set()
    for word in found:
        if word in seen:
            continue
        seen.add(word)
        stemmed = stem(word)
        # The stem is a prefix of the word whenever Snowball only strips a suffix; then the
        # stem alone already covers the word. Keep both when the stem changed letters.
        variants = (stemmed,) if word.startswith(stemmed) else (word, stemmed)
        terms.append(QueryTerm(word, variants))
        if len(terms) == MAX_QUERY_TERMS:
            break
    return terms


def area_key(area: str) -> str:
    """A comparable key for an area name ("Milano – Città Studi" -> "milano citta studi")."""
    return " ".join(words(area))


def area_served(served: str, wanted: str) -> bool:
    """True when a worker's area covers the requested one (every word of it is in the request).

    "Milano" covers "Milano Lambrate"; "Lambrate" covers "Milano, Lambrate"; "Monza" does not
    cover "Milano".
    """
    served_words = set(area_key(served).split())
    wanted_words = set(area_key(wanted).split())
    return bool(served_words) and served_words <= wanted_words
