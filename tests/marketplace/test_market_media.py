"""Photos: checked by content, stored atomically, served only to the people allowed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from control_plane.db import transaction
from control_plane.marketplace.media import MediaError, MediaStore, sniff
from control_plane.marketplace.models import Media
from control_plane.marketplace.photos import purge_orphans
from control_plane.models import Role
from tests.marketplace.conftest import (
    JPEG,
    WEBP,
    Market,
    add_worker,
    in_days,
    png_bytes,
    seed_catalogue,
)


def test_sniff_by_magic_bytes() -> None:
    assert sniff(JPEG) == "image/jpeg"
    assert sniff(png_bytes()) == "image/png"
    assert sniff(WEBP) == "image/webp"
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None
    assert sniff(b"GIF89a") is None
    assert sniff(b"") is None


def test_store_checks_writes_and_refuses_paths_outside(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media", max_bytes=2048)
    stored = store.save(JPEG, field="photo")
    assert stored.content_type == "image/jpeg" and stored.size == len(JPEG)
    assert store.path(stored.path).read_bytes() == JPEG
    assert not list((tmp_path / "media").rglob("*.part"))
    with pytest.raises(MediaError, match=r"^photo: the file is larger than"):
        store.save(png_bytes() + b"\x00" * 4096, field="photo")
    with pytest.raises(MediaError, match=r"^goods\.0\.photo: only JPEG, PNG or WebP"):
        store.check(b"%PDF-1.7", field="goods.0.photo")
    with pytest.raises(MediaError, match="outside the media directory"):
        store.path("../../etc/passwd")
    store.delete(stored.path)
    store.delete(stored.path)  # twice is harmless
    assert not store.path(stored.path).exists()


def test_who_may_see_which_photo(module_market: Market) -> None:
    m = module_market
    cat = seed_catalogue(m)
    boss, anna = m.people["boss@example.org"], m.people["anna@example.org"]
    other = m.person("other.media@example.org", Role.CLIENT)
    worker, worker_id = add_worker(
        m, "paint.media@example.org", name="Pia", kind="artisan",
        skills=[cat["Imbiancatura"]], areas=["Milano"],
    )  # fmt: skip
    private = m.upload(anna, JPEG, "kitchen.jpg")
    url = f"/api/v1/market/media/{private}"

    # Before it is used: its owner and the administrators only.
    assert m.client.get(url).status_code == 403
    assert m.client.get(url, headers=other.headers).status_code == 403
    assert m.client.get(url, headers=worker.headers).status_code == 403
    r = m.client.get(url, headers=anna.headers)
    assert r.status_code == 200 and r.content == JPEG
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "private, no-store"
    assert m.client.get(url, headers=boss.headers).status_code == 200

    # In a request: also the worker assigned to it, nobody else.
    body = {
        "category_id": cat["Imbiancatura"],
        "description": "Imbiancare la cucina, due pareti.",
        "date_kind": "exact",
        "exact_date": in_days(3),
        "area": "Milano",
        "photo_ids": [private],
    }
    rid = m.ok(m.post("/requests", anna, body), 201)["id"]
    assert m.client.get(url, headers=worker.headers).status_code == 403
    m.ok(m.post(f"/requests/{rid}/assign", boss, {"worker_id": worker_id}))
    assert m.client.get(url, headers=worker.headers).status_code == 200
    assert m.client.get(url, headers=other.headers).status_code == 403
    # A photo cannot be reused by someone else's request.
    r = m.post("/requests", other, {**body, "photo_ids": [private]})
    assert r.status_code == 422

    # A profile photo is public.
    face = m.upload(worker, png_bytes(), "me.png")
    m.ok(m.patch(f"/workers/{worker_id}", worker, {"photo_id": face}))
    profile = m.ok(m.get(f"/workers/{worker_id}"))
    r = m.client.get(profile["photo_url"])
    assert r.status_code == 200 and r.headers["cache-control"].startswith("public")
    assert m.client.get("/api/v1/market/media/999999", headers=boss.headers).status_code == 404


def test_abandoned_uploads_are_purged(module_market: Market) -> None:
    m = module_market
    anna = m.people["anna@example.org"]
    market = m.app.state.market
    old, recent = m.upload(anna), m.upload(anna)
    with transaction(m.factory) as session:
        row = session.get(Media, old)
        assert row is not None
        row.created_at = row.created_at - dt.timedelta(days=2)
        old_path = market.store.path(row.path)
    assert old_path.is_file()
    purged = purge_orphans(
        m.factory, market.store, row.created_at + dt.timedelta(days=2), dt.timedelta(hours=24)
    )
    assert purged == 1 and not old_path.exists()
    with m.factory() as session:
        assert session.get(Media, old) is None and session.get(Media, recent) is not None
