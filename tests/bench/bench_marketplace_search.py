"""Benchmark: the marketplace search API over 10,000 workers and 100,000 past jobs.

Target: p95 latency of ``GET /api/v1/market/search`` under 50 ms on SQLite and PostgreSQL.
The same run measures a naive baseline (``LIKE '%word%'`` on the descriptions, with the same
filters, count and page) for comparison, prints the figures and writes them to the
marketplace section of BENCHMARKS.md.

    .venv/bin/pytest tests/bench/bench_marketplace_search.py -m bench -s
    DIFRONTE_BENCH=1 .venv/bin/pytest tests/bench/bench_marketplace_search.py -s

Sizes can be changed with DIFRONTE_BENCH_WORKERS, DIFRONTE_BENCH_JOBS, DIFRONTE_BENCH_QUERIES.
A tiny run of the same code is part of the normal suite (tests/marketplace), so it keeps
working; its figures are never asserted.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from control_plane.app import create_app
from control_plane.db import make_engine, make_sessionmaker, migrate, transaction
from control_plane.marketplace import catalogue, search
from control_plane.marketplace.models import (
    Review,
    SearchDoc,
    ServiceRequest,
    WorkerArea,
    WorkerProfile,
    WorkerSkill,
)
from control_plane.marketplace.text import area_key
from control_plane.marketplace.workers import worker_body
from control_plane.models import User
from tests.conftest import make_settings
from tests.support.postgres import fresh_database

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "BENCHMARKS.md"
BEGIN, END = "<!-- marketplace-search:begin -->", "<!-- marketplace-search:end -->"
TARGET_P95_MS = 50.0

CATALOGUE = {
    "Pittura": ["Imbiancatura", "Verniciatura", "Decorazioni murali"],
    "Pulizie": ["Pulizia appartamenti", "Pulizia vetri", "Pulizie di fine cantiere"],
    "Sgomberi": ["Sgombero cantine", "Sgombero solai", "Smaltimento ingombranti"],
    "Piccole riparazioni": ["Idraulica", "Falegnameria", "Elettricità", "Montaggio mobili"],
    "Giardinaggio": ["Potatura siepi", "Taglio prato", "Cura orti"],
    "Traslochi": ["Piccoli traslochi", "Trasporto mobili"],
    "Aiuto in casa": ["Spesa e commissioni", "Compagnia", "Piccole faccende"],
}
PHRASES = {
    "Pittura": ["pitture lavabili", "imbiancatura di stanze", "stucco e rasatura", "vernici"],
    "Pulizie": ["pulizie di fondo", "lavaggio vetri e finestre", "pulizia dopo i lavori"],
    "Sgomberi": ["sgombero di cantine e solai", "ritiro ingombranti", "svuoto garage"],
    "Piccole riparazioni": ["riparo rubinetti", "perdite e scarichi", "mensole e armadi"],
    "Giardinaggio": ["potatura di siepi", "taglio del prato", "orti e aiuole"],
    "Traslochi": ["traslochi piccoli", "trasporto di mobili", "furgone proprio"],
    "Aiuto in casa": ["spesa a domicilio", "compagnia agli anziani", "commissioni in città"],
}
FIRST = "Anna Luca Giulia Marco Sara Paolo Elena Franco Chiara Ahmed Fatima Ugo Nina Piero".split()
LAST = "Rossi Bianchi Verdi Neri Colombo Ricci Marino Greco Bruno Gallo Conti Costa Fontana".split()
AREAS = [
    "Milano", "Lambrate", "Città Studi", "Niguarda", "Bicocca", "Navigli", "Isola", "Brera",
    "Porta Romana", "Baggio", "Quarto Oggiaro", "Corvetto", "Sesto San Giovanni", "Monza",
    "Cinisello Balsamo", "Cologno Monzese", "Rho", "Segrate", "San Donato", "Rozzano",
]  # fmt: skip
KINDS = ["volunteer", "factotum", "artisan"]

# What clients type, and filters they combine with it.
QUERIES: list[dict[str, Any]] = [
    {"q": "imbianc"},
    {"q": "pitture"},
    {"q": "pulizia vetri"},
    {"q": "giardin"},
    {"q": "trasloc", "kind": "factotum"},
    {"q": "idraul", "area": "Milano Lambrate"},
    {"q": "rubinett"},
    {"q": "sgombero cantina"},
    {"q": "città"},
    {"q": "compagnia", "kind": "volunteer"},
    {"q": "mobili", "sort": "rating"},
    {"q": "pulizie", "area": "Monza"},
    {"q": "p"},
    {"q": "riparazioni", "offset": 20},
    {"q": "", "kind": "artisan"},
    {"q": "", "category": "Pulizie"},
    {"q": "vernic", "category": "Pittura"},
    {"q": "spesa anziani"},
    {"q": "orti aiuole", "sort": "rating"},
    {"q": "astronave"},
]


@dataclass
class Figures:
    """What one database did."""

    database: str
    workers: int
    jobs: int
    queries: int
    load_s: float
    api_p50_ms: float
    api_p95_ms: float
    api_p99_ms: float
    service_p95_ms: float
    naive_p95_ms: float
    loadavg: float = 0.0  # the machine's 1-minute load average while measuring


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


# --- the generated catalogue ------------------------------------------------------------------


def generate(session: Session, *, workers: int, jobs: int, seed: int = 7) -> dict[str, int]:
    """Fill an empty marketplace: catalogue, workers with services and areas, past jobs with
    reviews, and the search index; returns the category ids by name."""
    rnd = random.Random(seed)
    ids: dict[str, int] = {}
    services: list[tuple[int, str]] = []  # (service id, category name)
    categories = {}
    for name, children in CATALOGUE.items():
        parent = catalogue.create_category(session, name=name)
        ids[name] = parent.id
        categories[parent.id] = parent
        for child in children:
            service = catalogue.create_category(session, name=child, parent_id=parent.id)
            ids[child] = service.id
            categories[service.id] = service
            services.append((service.id, name))
    session.flush()

    def users(count: int, role: str, prefix: str) -> list[int]:
        rows = [
            {
                "email": f"{prefix}{i}@bench.example.org",
                "name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                "role": role,
                "password_hash": "-",
                "locale": "it",
                "is_active": True,
            }
            for i in range(count)
        ]
        stmt = insert(User).returning(User.id, sort_by_parameter_order=True)
        return list(session.scalars(stmt, rows))

    worker_users = users(workers, "worker", "w")
    client_users = users(max(1, workers // 5), "client", "c")

    profiles = []
    plans = []
    for uid in worker_users:
        chosen = rnd.sample(services, k=rnd.randint(1, 3))
        areas = rnd.sample(AREAS, k=rnd.randint(1, 3))
        words = [rnd.choice(PHRASES[cat]) for _, cat in chosen]
        description = f"{rnd.choice(['Esperienza', 'Da anni', 'Con cura'])}: " + ", ".join(words)
        days = rnd.sample(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], k=rnd.randint(2, 6))
        profiles.append(
            {
                "user_id": uid,
                "kind": rnd.choice(KINDS),
                "display_name": f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                "description": description,
                "availability": {d: ["morning", "afternoon"] for d in sorted(days)},
                "active": rnd.random() > 0.03,
                "rating_sum": 0,
                "rating_count": 0,
            }
        )
        plans.append((chosen, areas))
    worker_ids = list(
        session.scalars(
            insert(WorkerProfile).returning(WorkerProfile.id, sort_by_parameter_order=True),
            profiles,
        )
    )
    session.execute(
        insert(WorkerSkill),
        [
            {"worker_id": wid, "category_id": sid}
            for wid, (chosen, _) in zip(worker_ids, plans, strict=True)
            for sid, _ in chosen
        ],
    )
    session.execute(
        insert(WorkerArea),
        [
            {"worker_id": wid, "name": a, "key": area_key(a)}
            for wid, (_, areas) in zip(worker_ids, plans, strict=True)
            for a in areas
        ],
    )

    # Past jobs: mostly closed (many rated), a few in progress (the workers' current load).
    epoch = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    job_rows = []
    for _ in range(jobs):
        i = rnd.randrange(len(worker_ids))
        sid = rnd.choice(plans[i][0])[0]
        created = epoch + dt.timedelta(minutes=rnd.randrange(60 * 24 * 700))
        status = "closed" if rnd.random() > 0.02 else rnd.choice(["assigned", "scheduled"])
        job_rows.append(
            {
                "client_id": rnd.choice(client_users),
                "category_id": sid,
                "description": "Lavoro " + rnd.choice(PHRASES[categories[sid].parent.name]),
                "date_kind": "exact",
                "exact_date": created.date(),
                "time_of_day": "any",
                "area": rnd.choice(plans[i][1]),
                "status": status,
                "worker_id": worker_ids[i],
                "created_at": created,
                "updated_at": created,
            }
        )
    job_ids = list(
        session.scalars(
            insert(ServiceRequest).returning(ServiceRequest.id, sort_by_parameter_order=True),
            job_rows,
        )
    )
    reviews = []
    totals: dict[int, list[int]] = {}
    for jid, row in zip(job_ids, job_rows, strict=True):
        if row["status"] == "closed" and rnd.random() < 0.6:
            stars = rnd.choices([1, 2, 3, 4, 5], weights=[1, 1, 3, 6, 8])[0]
            reviews.append(
                {
                    "request_id": jid,
                    "worker_id": row["worker_id"],
                    "client_id": row["client_id"],
                    "stars": stars,
                    "comment": "",
                    "created_at": row["created_at"],
                    "hidden": False,
                }
            )
            totals.setdefault(row["worker_id"], []).append(stars)
    if reviews:
        session.execute(insert(Review), reviews)
    for wid, stars in totals.items():
        session.execute(
            WorkerProfile.__table__.update()
            .where(WorkerProfile.id == wid)
            .values(rating_sum=sum(stars), rating_count=len(stars))
        )

    # The search documents, built by the real worker_body from the generated rows.
    docs = []
    for wid, row, (chosen, areas) in zip(worker_ids, profiles, plans, strict=True):
        if not row["active"]:
            continue
        shape = SimpleNamespace(
            display_name=row["display_name"],
            kind=row["kind"],
            description=row["description"],
            skills=[SimpleNamespace(category=categories[sid]) for sid, _ in chosen],
            areas=[SimpleNamespace(name=a) for a in areas],
        )
        docs.append({"kind": search.WORKER, "ref_id": wid, "body": worker_body(shape)})
    session.execute(insert(SearchDoc), docs)
    search.backend_for(session).rebuild(session)
    # Planner statistics, as a maintained production database has them.
    session.execute(text("ANALYZE"))
    return ids


# --- measuring -------------------------------------------------------------------------------


def _params(query: dict[str, Any], ids: dict[str, int]) -> dict[str, Any]:
    params = dict(query)
    if "category" in params:
        params["category"] = ids[params["category"]]
    return params


def _naive(session: Session, params: dict[str, Any], ids: dict[str, int]) -> list[int]:
    """The baseline: every word as ``LIKE '%word%'`` over name and description."""
    stmt = select(WorkerProfile.id).where(WorkerProfile.active.is_(True))
    for word in re.findall(r"\w+", str(params.get("q", "")).lower()):
        pattern = f"%{word}%"
        stmt = stmt.where(
            func.lower(WorkerProfile.description).like(pattern)
            | func.lower(WorkerProfile.display_name).like(pattern)
        )
    if params.get("kind"):
        stmt = stmt.where(WorkerProfile.kind == params["kind"])
    if params.get("category"):
        wanted = catalogue.services_of(session, params["category"])
        stmt = stmt.where(
            WorkerProfile.id.in_(
                select(WorkerSkill.worker_id).where(WorkerSkill.category_id.in_(wanted))
            )
        )
    session.scalar(select(func.count()).select_from(stmt.subquery()))
    page = stmt.order_by(WorkerProfile.rating_sum.desc(), WorkerProfile.id).limit(20)
    return list(session.scalars(page.offset(params.get("offset", 0))))


def _timed(fn: Callable[[], object], samples: list[float]) -> None:
    start = time.perf_counter()
    fn()
    samples.append((time.perf_counter() - start) * 1000)


def measure(
    client: TestClient, session: Session, ids: dict[str, int], queries: int
) -> dict[str, float]:
    """Latencies (ms) of the API, of the search function alone, and of the naive baseline."""
    plan = [_params(QUERIES[i % len(QUERIES)], ids) for i in range(queries)]
    for params in plan[: len(QUERIES)]:  # warm caches and the stemmer
        assert client.get("/api/v1/market/search", params=params).status_code == 200
    api: list[float] = []
    service: list[float] = []
    naive: list[float] = []
    for params in plan:

        def call(p: dict[str, Any] = params) -> None:
            r = client.get("/api/v1/market/search", params=p)
            assert r.status_code == 200, r.text

        _timed(call, api)
        query = search.WorkerQuery(
            text=params.get("q", ""),
            kinds=(params["kind"],) if params.get("kind") else (),
            category_ids=catalogue.services_of(session, params["category"])
            if params.get("category")
            else (),
            area=params.get("area", ""),
            sort=params.get("sort", "relevance"),
            offset=params.get("offset", 0),
        )
        _timed(lambda q=query: search.search_workers(session, q), service)
        _timed(lambda p=params: _naive(session, p, ids), naive)
    return {
        "api_p50_ms": statistics.median(api),
        "api_p95_ms": _percentile(api, 95),
        "api_p99_ms": _percentile(api, 99),
        "service_p95_ms": _percentile(service, 95),
        "naive_p95_ms": _percentile(naive, 95),
    }


def run_benchmark(db_url: str, *, workers: int, jobs: int, queries: int) -> Figures:
    """Migrate, generate, and measure on the (empty) database at ``db_url``."""
    migrate(db_url)
    # Generate before the app starts: its periodic tasks would wait on the bulk transaction.
    engine = make_engine(db_url)
    started = time.perf_counter()
    with transaction(make_sessionmaker(engine)) as session:
        ids = generate(session, workers=workers, jobs=jobs)
    load_s = time.perf_counter() - started
    name = engine.dialect.name
    engine.dispose()
    app = create_app(make_settings(db_url, None), run_migrations=False)
    with TestClient(app) as client, app.state.sessionmaker() as session:
        counts = (
            session.scalar(select(func.count()).select_from(WorkerProfile)),
            session.scalar(select(func.count()).select_from(ServiceRequest)),
        )
        assert counts == (workers, jobs), counts
        timings = measure(client, session, ids, queries)
    # Other work on a small shared machine slows every figure alike: say how busy it was.
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return Figures(name, workers, jobs, queries, load_s, **timings, loadavg=loadavg)


# --- reporting -------------------------------------------------------------------------------


def section(figures: list[Figures], *, when: str | None = None) -> str:
    """The marketplace section of BENCHMARKS.md."""
    when = when or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        BEGIN,
        "## Marketplace search",
        "",
        f"`tests/bench/bench_marketplace_search.py`, run {when} on {platform.node() or 'this'} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}).",
        "Latency of `GET /api/v1/market/search` through the full app (in-process client), "
        f"target p95 < {TARGET_P95_MS:.0f} ms; the same queries through the search function "
        "alone, and a naive `LIKE '%word%'` baseline with the same filters, count and page. "
        f"{len(QUERIES)} query shapes (free text, partial words, filters, sorting), cycled.",
        "",
        "| database | workers | past jobs | queries | API p50 | API p95 | API p99 "
        "| search p95 | naive LIKE p95 | target met | data generation | machine load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for f in figures:
        met = "yes" if f.api_p95_ms < TARGET_P95_MS else "**no**"
        lines.append(
            f"| {f.database} | {f.workers:,} | {f.jobs:,} | {f.queries} | {f.api_p50_ms:.1f} ms "
            f"| {f.api_p95_ms:.1f} ms | {f.api_p99_ms:.1f} ms | {f.service_p95_ms:.1f} ms "
            f"| {f.naive_p95_ms:.1f} ms | {met} | {f.load_s:.0f} s | {f.loadavg:.1f} |"
        )
    lines += [
        "",
        '"search" is `search_workers` alone (match, filters, rank, page and total in one '
        "query); the API adds the result cards, the matching services and HTTP. The naive "
        "baseline finds less (no stemming, accents or category names) and has to scan every "
        "description. Machine load is the 1-minute load average while measuring: other work on "
        "the machine slows every figure alike.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text_: str) -> None:
    """Put the section in ``path``, replacing an older one and keeping every other section."""
    current = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        updated = head + text_ + ("\n" + tail if tail else "")
    else:
        updated = current.rstrip("\n") + "\n\n" + text_
    path.write_text(updated, encoding="utf-8")


@contextmanager
def databases(tmp_path: Path) -> Iterator[list[str]]:
    """A fresh SQLite file and a fresh PostgreSQL database."""
    with fresh_database() as pg:
        yield [f"sqlite:///{tmp_path / 'bench.db'}", pg]


def _wanted(config: pytest.Config) -> bool:
    markexpr = str(config.getoption("markexpr", "") or "")
    return os.environ.get("DIFRONTE_BENCH") == "1" or "bench" in markexpr.split()


@pytest.mark.bench
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(3600)
def test_marketplace_search_benchmark(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Generate, measure, print, write BENCHMARKS.md (figures are reported, not asserted)."""
    if not _wanted(request.config):
        pytest.skip("a benchmark: run it with -m bench or DIFRONTE_BENCH=1")
    workers = int(os.environ.get("DIFRONTE_BENCH_WORKERS", "10000"))
    jobs = int(os.environ.get("DIFRONTE_BENCH_JOBS", "100000"))
    queries = int(os.environ.get("DIFRONTE_BENCH_QUERIES", "400"))
    with databases(tmp_path) as urls:
        figures = [run_benchmark(u, workers=workers, jobs=jobs, queries=queries) for u in urls]
    text_ = section(figures)
    print("\n" + text_)
    write_section(BENCHMARKS, text_)
