"""The Italian normalisation shared by indexing and querying (pure)."""

from __future__ import annotations

import pytest

from control_plane.marketplace.search import PostgresFts, SqliteFts
from control_plane.marketplace.text import (
    area_key,
    area_served,
    fold,
    index_text,
    query_terms,
    stem,
    tokens,
)


def test_fold_lowercases_and_strips_accents() -> None:
    assert fold("Città PERCHÉ Però façade Über") == "citta perche pero facade uber"


def test_tokens_split_elisions_and_drop_stopwords() -> None:
    assert tokens("Sgombero dell'armadio e della cantina, in città!") == [
        "sgombero",
        "armadio",
        "cantina",
        "citta",
    ]


def test_stems_group_inflections() -> None:
    assert stem("pitture") == stem("pittura")
    assert stem("pulizie") == stem("pulizia")
    assert stem("sgomberi") == stem("sgombero")
    assert stem("traslochi") == stem("trasloco")
    # Numbers and very short words are left alone.
    assert stem("2024") == "2024"
    assert stem("tv") == "tv"


def test_index_text_keeps_each_word_and_its_stem() -> None:
    body = index_text("Imbiancatura pareti", ["Città"])
    words = body.split()
    assert "imbiancatura" in words and stem("imbiancatura") in words
    assert "citta" in words


@pytest.mark.parametrize(
    ("typed", "document"),
    [
        ("pitture", "Pittura di interni"),  # stemming
        ("imbianc", "Imbiancatura"),  # a partial word
        ("citta", "Lavori in città"),  # accents
        ("CITTÀ", "lavori in citta"),
        ("giardin", "Giardinaggio"),
        ("sgomberi", "Sgombero cantine"),
    ],
)
def test_a_query_term_is_a_prefix_of_an_indexed_token(typed: str, document: str) -> None:
    indexed = index_text(document).split()
    for term in query_terms(typed):
        assert any(tok.startswith(v) for tok in indexed for v in term.variants), (term, indexed)


def test_query_terms_drop_stopwords_unless_nothing_else_is_typed() -> None:
    assert [t.word for t in query_terms("pulizia della casa")] == ["pulizia", "casa"]
    # Someone still typing "la" probably means "lavaggio", "lampadario"...
    assert [t.word for t in query_terms("la")] == ["la"]
    assert query_terms("   ") == []


def test_query_terms_are_deduplicated_and_capped() -> None:
    terms = query_terms("casa casa " + " ".join(f"parola{i}" for i in range(20)))
    assert [t.word for t in terms][:2] == ["casa", "parola0"]
    assert len(terms) == 8


def test_backend_expressions_only_contain_safe_tokens() -> None:
    terms = query_terms('pitture" OR * NEAR( imbianc:* & !')
    assert SqliteFts.expression(terms) == '("pittur"*) AND ("or"*) AND ("near"*) AND ("imbianc"*)'
    assert PostgresFts.expression(terms) == "(pittur:*) & (or:*) & (near:*) & (imbianc:*)"


def test_areas() -> None:
    assert area_key("Milano – Città Studi") == "milano citta studi"
    assert area_served("Milano", "Milano, Lambrate")
    assert area_served("Lambrate", "milano lambrate")
    assert not area_served("Monza", "Milano")
    assert not area_served("", "Milano")
