"""The whole path through the API, on SQLite and PostgreSQL, with e-mails to a real SMTP server:
search → request with goods → ranked assignment → quote with credit → acceptance →
completion → rating (once, by its client only) → moderation."""

from __future__ import annotations

from control_plane.marketplace.models import Notification, Review, StockItem
from control_plane.models import Role
from tests.marketplace.conftest import (
    Market,
    SmtpServer,
    add_worker,
    in_days,
    seed_catalogue,
)


def test_from_search_to_rating(market: Market, smtp_server: SmtpServer) -> None:
    m = market
    # E-mails go to the real SMTP server from now on.
    from control_plane.marketplace.mail import SmtpSender

    m.app.state.market.sender = SmtpSender(
        smtp_server.host, smtp_server.port, from_address="factotum@example.org"
    )
    cat = seed_catalogue(m)
    boss, anna = m.people["boss@example.org"], m.people["anna@example.org"]
    giulia, giulia_id = add_worker(
        m,
        "giulia@example.org",
        name="Giulia Bianchi",
        kind="artisan",
        skills=[cat["Imbiancatura"], cat["Verniciatura"]],
        areas=["Milano"],
        description="Imbianchina con vent'anni di esperienza: pitture lavabili e decorazioni.",
    )
    _, marco_id = add_worker(
        m,
        "marco@example.org",
        name="Marco Verdi",
        kind="factotum",
        skills=[cat["Verniciatura"], cat["Idraulica"]],
        areas=["Monza"],
        description="Tuttofare: piccole riparazioni e verniciature.",
    )
    add_worker(
        m,
        "lucia@example.org",
        name="Lucia Neri",
        kind="volunteer",
        skills=[cat["Potatura siepi"]],
        areas=["Milano"],
        description="Volontaria, amo il giardinaggio.",
    )

    # 1. The client searches, as she types, and finds the painter.
    # "pitture" finds her description and the category "Pittura" (so Marco too, who varnishes).
    found = m.ok(m.get("/search", params={"q": "pitture"}))
    assert [w["display_name"] for w in found["items"]] == ["Giulia Bianchi", "Marco Verdi"]
    assert found["items"][0]["services"] == ["Imbiancatura", "Verniciatura"]
    found = m.ok(m.get("/search", params={"q": "imbianc", "kind": "artisan"}))
    assert found["total"] == 1 and found["services"][0]["name"] == "Imbiancatura"
    page = m.ok(m.get(f"/workers/{giulia_id}"))
    assert page["rating_average"] is None and page["reviews"] == []

    # 2. She asks for a quote, with photos and an armchair offered in exchange.
    photo = m.upload(anna)
    chair_photo = m.upload(anna)
    request = m.ok(
        m.post(
            "/requests",
            anna,
            {
                "category_id": cat["Imbiancatura"],
                "description": "Imbiancare soggiorno e corridoio, circa 40 metri quadri.",
                "date_kind": "window",
                "window_start": in_days(1),
                "window_end": in_days(14),
                "time_of_day": "morning",
                "area": "Milano Lambrate",
                "photo_ids": [photo],
                "goods": [
                    {
                        "kind": "furniture",
                        "title": "Poltrona in pelle",
                        "description": "Marrone, in buono stato",
                        "photo_ids": [chair_photo],
                    },
                    {"kind": "clothes", "title": "Cappotto", "description": "Taglia 48"},
                ],
            },
        ),
        201,
    )
    rid = request["id"]
    assert request["status"] == "new" and request["actions"] == ["cancel"]
    assert len(request["photo_urls"]) == 1 and len(request["goods"][0]["photo_urls"]) == 1

    # 3. The administrators see it in their queue and get ranked candidates, explained.
    queue = m.ok(m.get("/requests", boss, params={"status": "new"}))
    assert [r["id"] for r in queue["items"]] == [rid]
    ranked = m.ok(m.get(f"/requests/{rid}/candidates", boss))
    assert [c["worker_id"] for c in ranked] == [giulia_id, marco_id]
    best = {f["name"]: f for f in ranked[0]["factors"]}
    assert best["skill"]["reason"] == "skill.exact"
    assert best["area"]["note"] == "serves Milano Lambrate"
    assert ranked[1]["factors"][0]["reason"] == "skill.category"
    assert ranked[0]["total"] > ranked[1]["total"]

    assigned = m.ok(m.post(f"/requests/{rid}/assign", boss, {"worker_id": giulia_id}))
    assert assigned["status"] == "assigned" and assigned["worker"]["id"] == giulia_id
    # The worker now sees the job, with her photos.
    jobs = m.ok(m.get("/requests", giulia))
    assert [j["id"] for j in jobs["items"]] == [rid]
    assert (
        m.client.get(jobs["items"][0]["photo_urls"][0], headers=giulia.headers).status_code == 200
    )

    # 4. Quote: the armchair is accepted (80 €), the coat declined; 80 € credited on 250 €.
    chair, coat = request["goods"][0]["id"], request["goods"][1]["id"]
    quoted = m.ok(
        m.post(
            f"/requests/{rid}/quote",
            boss,
            {
                "price_cents": 25000,
                "date": in_days(5),
                "note": "Pitture lavabili incluse",
                "assessments": [
                    {"good_id": chair, "accepted": True, "value_cents": 8000},
                    {"good_id": coat, "accepted": False, "reason": "non ritiriamo abiti usati"},
                ],
            },
        )
    )
    quote = quoted["quote"]
    assert (quote["price_cents"], quote["credit_cents"], quote["due_cents"]) == (25000, 8000, 17000)
    assert quoted["goods"][1]["decline_reason"] == "non ritiriamo abiti usati"

    # 5. The client accepts: the job is scheduled on the quote's date.
    seen = m.ok(m.get(f"/requests/{rid}", anna))
    assert seen["actions"] == ["accept", "decline", "cancel"]
    accepted = m.ok(m.post(f"/requests/{rid}/accept", anna))
    assert accepted["status"] == "scheduled" and accepted["scheduled_date"] == in_days(5)

    # Nobody rates before the job is done.
    assert m.post(f"/requests/{rid}/review", anna, {"stars": 5}).status_code == 409

    # 6. The worker marks it done; the armchair enters the cooperative's stock.
    done = m.ok(m.post(f"/requests/{rid}/complete", giulia))
    assert done["status"] == "done" and done["actions"] == []
    assert m.ok(m.get(f"/requests/{rid}", anna))["actions"] == ["rate"]
    assert m.count(StockItem) == 1
    stock = m.ok(m.get("/stock", boss))
    assert stock[0]["title"] == "Poltrona in pelle" and stock[0]["value_cents"] == 8000

    # 7. Rating: by someone else refused, by the client once, a second time refused.
    other = m.person("bruno@example.org", Role.CLIENT)
    assert m.post(f"/requests/{rid}/review", other, {"stars": 1}).status_code == 403
    assert m.post(f"/requests/{rid}/review", giulia, {"stars": 5}).status_code == 403
    review = m.ok(
        m.post(f"/requests/{rid}/review", anna, {"stars": 4, "comment": "Brava e puntuale"}), 201
    )
    second = m.post(f"/requests/{rid}/review", anna, {"stars": 1, "comment": "ripensandoci"})
    assert second.status_code == 409
    assert "already been rated" in second.json()["detail"]
    assert m.count(Review) == 1
    page = m.ok(m.get(f"/workers/{giulia_id}"))
    assert page["rating_average"] == 4.0 and page["rating_count"] == 1
    assert page["reviews"][0]["comment"] == "Brava e puntuale"

    # 8. Closed by the administrators.
    closed = m.ok(m.post(f"/requests/{rid}/close", boss))
    assert closed["status"] == "closed" and closed["actions"] == []

    # 9. An abusive review is hidden with a reason; the average follows.
    assert m.post(f"/reviews/{review['id']}/hide", anna, {"reason": "x"}).status_code == 403
    hidden = m.ok(m.post(f"/reviews/{review['id']}/hide", boss, {"reason": "linguaggio offensivo"}))
    assert hidden["hidden"] and hidden["hidden_reason"] == "linguaggio offensivo"
    page = m.ok(m.get(f"/workers/{giulia_id}"))
    assert page["rating_average"] is None and page["reviews"] == []

    # 10. Every step told the people concerned, by e-mail, in their language.
    m.deliver_mail()
    events = {(n.event, n.to_email) for n in _notifications(m)}
    assert events == {
        ("request_received", "anna@example.org"),
        ("job_assigned", "giulia@example.org"),
        ("worker_assigned", "anna@example.org"),
        ("quote_sent", "anna@example.org"),
        ("quote_accepted", "giulia@example.org"),
        ("job_scheduled", "anna@example.org"),
        ("job_done", "anna@example.org"),
        ("review_received", "giulia@example.org"),
        ("job_closed", "anna@example.org"),
        ("job_closed", "giulia@example.org"),
    }
    messages = smtp_server.wait_for(10)
    quote_mail = [m for m in smtp_server.to("anna@example.org") if "preventivo" in m["Subject"]]
    body = quote_mail[0].get_payload(decode=True).decode()
    assert "Da pagare: 170,00 €" in body and "Credito applicato: -80,00 €" in body
    assert "Cappotto: non accettato (non ritiriamo abiti usati)" in body
    assert f"http://factotum.test/market/requests/{rid}" in body
    assert all(n.status == "sent" for n in _notifications(m))
    assert len(messages) == 10


def _notifications(m: Market) -> list[Notification]:
    with m.factory() as session:
        return list(session.query(Notification).order_by(Notification.id))
