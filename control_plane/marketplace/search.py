"""Full-text search over services and workers: one interface, two database backends.

``market_search_docs`` holds the normalised text of every searchable thing (see ``text``).
SQLite matches it through the FTS5 table ``market_search_fts`` (external content, kept in
step by :func:`put_doc` / :func:`drop_doc`); PostgreSQL through a stored, GIN-indexed
``market_search_tsv = to_tsvector('simple', body)`` column. Both only see plain folded tokens and do
prefix matching, so they find the same things; only the relevance score (bm25 / ts_rank)
differs. (The catalogue's own names are few: ``catalogue.search_services`` matches them in
Python with the same rules.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.orm import Session

from .models import SearchDoc, WorkerArea, WorkerProfile, WorkerSkill
from .text import QueryTerm, area_key, query_terms

WORKER = "worker"

Sort = Literal["relevance", "rating"]

# The Bayesian average (see ranking.bayesian_rating) in SQL, for sorting by rating.
_RATING = (WorkerProfile.rating_sum + 10.5) / (WorkerProfile.rating_count + 3.0)


class SearchBackend(ABC):
    """How one database matches the normalised text."""

    name: str

    @abstractmethod
    def inserted(self, session: Session, doc_id: int, body: str) -> None:
        """A document row was added."""

    @abstractmethod
    def updated(self, session: Session, doc_id: int, old: str, new: str) -> None:
        """A document's body changed from ``old`` to ``new``."""

    @abstractmethod
    def deleted(self, session: Session, doc_id: int, old: str) -> None:
        """A document row is being removed."""

    @abstractmethod
    def rebuild(self, session: Session) -> None:
        """Rebuild the full-text index from the document rows (after bulk loads)."""

    @abstractmethod
    def match(
        self, stmt: Select[Any], terms: Sequence[QueryTerm]
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        """``stmt`` (which joins ``SearchDoc``) restricted to matches, and a relevance score
        where higher is better."""

    @abstractmethod
    def prepare(self, session: Session) -> None:
        """Tune the session's transaction before a search."""


class SqliteFts(SearchBackend):
    """SQLite FTS5 over the document rows (external content: the text is stored once)."""

    name = "sqlite"
    _fts = table("market_search_fts", column("rowid"), column("body"))

    def inserted(self, session: Session, doc_id: int, body: str) -> None:
        """Add the row to the FTS index."""
        session.execute(
            text("INSERT INTO market_search_fts(rowid, body) VALUES (:id, :body)"),
            {"id": doc_id, "body": body},
        )

    def updated(self, session: Session, doc_id: int, old: str, new: str) -> None:
        """Replace the row's entry in the FTS index."""
        self.deleted(session, doc_id, old)
        self.inserted(session, doc_id, new)

    def deleted(self, session: Session, doc_id: int, old: str) -> None:
        """Remove the row from the FTS index; FTS5 needs the old text to find its tokens."""
        session.execute(
            text(
                "INSERT INTO market_search_fts(market_search_fts, rowid, body) "
                "VALUES ('delete', :id, :body)"
            ),
            {"id": doc_id, "body": old},
        )

    def rebuild(self, session: Session) -> None:
        """Rebuild the FTS index from ``market_search_docs``."""
        session.execute(text("INSERT INTO market_search_fts(market_search_fts) VALUES ('rebuild')"))

    def prepare(self, session: Session) -> None:
        """Nothing to tune."""

    @staticmethod
    def expression(terms: Sequence[QueryTerm]) -> str:
        """The FTS5 query: every term, each as a prefix of any of its variants."""
        # Variants are letters and digits only (see text.tokens), so quoting is enough.
        return " AND ".join(
            "(" + " OR ".join(f'"{v}"*' for v in term.variants) + ")" for term in terms
        )

    def match(
        self, stmt: Select[Any], terms: Sequence[QueryTerm]
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        """Join the FTS table and match; bm25 is lower for better matches, so negate it."""
        fts = self._fts
        stmt = stmt.join(fts, fts.c.rowid == SearchDoc.id).where(
            text("market_search_fts MATCH :fts_query").bindparams(fts_query=self.expression(terms))
        )
        rank = -func.bm25(literal_column("market_search_fts"))
        return stmt, rank


class PostgresFts(SearchBackend):
    """PostgreSQL full-text search with the 'simple' configuration (no stemming of its own:
    the text is already stemmed by ``text``), over the stored column
    ``market_search_tsv = to_tsvector('simple', body)`` that the migration adds (GIN-indexed,
    and listed in ``schema.UNMANAGED_PREFIXES`` so autogenerate leaves it alone)."""

    name = "postgresql"
    _vector: ColumnElement[Any] = literal_column("market_search_docs.market_search_tsv")
    _config: ColumnElement[Any] = literal_column("'simple'::regconfig")

    def inserted(self, session: Session, doc_id: int, body: str) -> None:
        """Nothing to do: the generated column follows the row."""

    def updated(self, session: Session, doc_id: int, old: str, new: str) -> None:
        """Nothing to do: the generated column follows the row."""

    def deleted(self, session: Session, doc_id: int, old: str) -> None:
        """Nothing to do: the generated column follows the row."""

    def rebuild(self, session: Session) -> None:
        """Refresh the planner's statistics after a bulk load."""
        session.execute(text("ANALYZE market_search_docs"))

    @staticmethod
    def expression(terms: Sequence[QueryTerm]) -> str:
        """The tsquery: every term, each as a prefix (``:*``) of any of its variants."""
        return " & ".join("(" + " | ".join(f"{v}:*" for v in term.variants) + ")" for term in terms)

    def prepare(self, session: Session) -> None:
        """No parallel workers for this transaction's queries: starting them costs more than
        scanning a few thousand rows, and much more on a busy machine (measured: 207 ms
        with a parallel scan, 29 ms without, for 3,400 matches)."""
        session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))

    def match(
        self, stmt: Select[Any], terms: Sequence[QueryTerm]
    ) -> tuple[Select[Any], ColumnElement[Any]]:
        """Match the stored tsvector against the tsquery; ts_rank is the relevance."""
        query = func.to_tsquery(self._config, bindparam("ts_query", self.expression(terms)))
        return stmt.where(self._vector.op("@@")(query)), func.ts_rank(self._vector, query)


_BACKENDS: dict[str, SearchBackend] = {"sqlite": SqliteFts(), "postgresql": PostgresFts()}


def backend_for(session: Session) -> SearchBackend:
    """The backend of the database ``session`` talks to."""
    name = session.get_bind().dialect.name
    try:
        return _BACKENDS[name]
    except KeyError:
        raise RuntimeError(f"marketplace search: no backend for the {name!r} database") from None


# --- keeping the documents ----------------------------------------------------------------


def put_doc(session: Session, kind: str, ref_id: int, body: str) -> None:
    """Create or update the searchable text of one thing, in the caller's transaction."""
    backend = backend_for(session)
    doc = session.scalar(
        select(SearchDoc).where(SearchDoc.kind == kind, SearchDoc.ref_id == ref_id)
    )
    if doc is None:
        doc = SearchDoc(kind=kind, ref_id=ref_id, body=body)
        session.add(doc)
        session.flush()
        backend.inserted(session, doc.id, body)
    elif doc.body != body:
        old, doc.body = doc.body, body
        session.flush()
        backend.updated(session, doc.id, old, body)


def drop_doc(session: Session, kind: str, ref_id: int) -> None:
    """Remove one thing from the search."""
    doc = session.scalar(
        select(SearchDoc).where(SearchDoc.kind == kind, SearchDoc.ref_id == ref_id)
    )
    if doc is not None:
        backend_for(session).deleted(session, doc.id, doc.body)
        session.delete(doc)
        session.flush()


# --- queries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerQuery:
    """A client's search: free text and filters."""

    text: str = ""
    category_ids: tuple[int, ...] = ()  # services (or categories expanded to their services)
    kinds: tuple[str, ...] = ()
    area: str = ""
    sort: Sort = "relevance"
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class WorkerHit:
    worker_id: int
    score: float


@dataclass
class WorkerResults:
    hits: list[WorkerHit]
    total: int
    terms: list[QueryTerm] = field(default_factory=list)


def _area_keys(area: str) -> list[str]:
    # Every run of consecutive words: a worker serving "Milano" or "Lambrate" covers
    # "Milano Lambrate" (see text.area_served).
    words = area_key(area).split()[:8]
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)]


def search_workers(session: Session, query: WorkerQuery) -> WorkerResults:
    """Active workers matching the text and filters, best first, one page of them."""
    terms = query_terms(query.text)
    stmt: Select[Any] = select(WorkerProfile.id).where(WorkerProfile.active.is_(True))
    rank: ColumnElement[Any] | None = None
    if terms:
        backend = backend_for(session)
        backend.prepare(session)
        stmt = stmt.join(
            SearchDoc, and_(SearchDoc.kind == WORKER, SearchDoc.ref_id == WorkerProfile.id)
        )
        stmt, rank = backend.match(stmt, terms)
    if query.kinds:
        stmt = stmt.where(WorkerProfile.kind.in_(query.kinds))
    if query.category_ids:
        stmt = stmt.where(
            exists().where(
                WorkerSkill.worker_id == WorkerProfile.id,
                WorkerSkill.category_id.in_(query.category_ids),
            )
        )
    keys = _area_keys(query.area)
    if keys:
        stmt = stmt.where(
            exists().where(WorkerArea.worker_id == WorkerProfile.id, WorkerArea.key.in_(keys))
        )
    score: ColumnElement[Any] = _RATING
    if rank is not None and query.sort == "relevance" and max(len(t.word) for t in terms) > 1:
        score = rank
    # The total rides along as a window count: one pass over the matches instead of two. The
    # scores are computed in a subquery first (FTS5 allows bm25() only next to its MATCH).
    inner = stmt.add_columns(score.label("score"), _RATING.label("rating")).subquery()
    rows = session.execute(
        select(inner.c.id, inner.c.score, func.count().over())
        .order_by(inner.c.score.desc(), inner.c.rating.desc(), inner.c.id)
        .limit(query.limit)
        .offset(query.offset)
    ).all()
    if rows:
        total = int(rows[0][2])
    elif query.offset == 0:
        total = 0
    else:  # a page past the end: count separately
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    return WorkerResults([WorkerHit(r[0], float(r[1])) for r in rows], total, terms)
