"""The API on a real database (SQLite and PostgreSQL): tokens and roles, the list, detail, outreach.

A small hand-built list of five customers is published twice (two runs) so the history, the
filters and the order can be checked by hand.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from retain.serve import auth
from retain.serve.api import create_app
from retain.serve.db import open_database
from serve_fixtures import publish_two_runs

SECRET_NOTE = "called, she mentioned her divorce"  # must never reach a log


@pytest.fixture()
def served(database_url: str) -> Iterator[tuple[TestClient, dict[str, str], object]]:
    engine = open_database(database_url)
    publish_two_runs(engine)
    tokens = {}
    with engine.begin() as conn:
        for role in auth.ROLES:
            tokens[role] = auth.create_token(conn, f"{role}-holder", role)
    with TestClient(create_app(engine)) as client:
        yield client, tokens, engine
    engine.dispose()


def get(client: TestClient, path: str, token: str | None, **params: object):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers, params=params)


def test_no_customer_data_without_a_valid_token(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    assert client.get("/api/health").json() == {"status": "ok"}
    assert client.get("/api/ready").status_code == 200
    for path in ("/api/customers", "/api/customers/c1", "/api/customers/export.csv", "/api/runs"):
        assert get(client, path, None).status_code == 401
        assert get(client, path, "rtn_not-a-token").status_code == 401
    # a revoked token stops working at once
    with served[2].begin() as conn:
        assert auth.revoke_token(conn, "viewer-holder") == 1
    assert get(client, "/api/customers", tokens["viewer"]).status_code == 401


def test_roles_follow_the_matrix(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    body = {"channel": "phone", "outcome": "reached"}
    post = lambda role: client.post(
        "/api/customers/c1/outreach", json=body, headers={"Authorization": f"Bearer {tokens[role]}"}
    )
    assert post("viewer").status_code == 403
    assert post("publisher").status_code == 403
    assert post("lead").status_code == 201
    assert get(client, "/api/customers", tokens["publisher"]).status_code == 403  # no customer data
    assert get(client, "/api/runs", tokens["publisher"]).status_code == 200
    assert get(client, "/api/tokens", tokens["lead"]).status_code == 403
    listed = get(client, "/api/tokens", tokens["admin"]).json()
    assert {t["role"] for t in listed} == set(auth.ROLES)
    assert all("token" not in t and "token_sha256" not in t for t in listed)
    me = get(client, "/api/me", tokens["lead"]).json()
    assert me["role"] == "lead" and "log_outreach" in me["permissions"]


def test_only_the_hash_of_a_token_is_stored(served) -> None:  # type: ignore[no-untyped-def]
    _, tokens, engine = served
    import sqlalchemy as sa

    from retain.serve.db import api_tokens

    with engine.connect() as conn:
        stored = conn.execute(sa.select(api_tokens)).mappings().all()
    dumped = repr(stored)
    for token in tokens.values():
        assert token not in dumped
        assert auth.token_hash(token) in dumped


def test_the_list_pages_sorts_and_filters(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    viewer = tokens["viewer"]
    everything = get(client, "/api/customers", viewer).json()
    assert everything["total"] == 5 and everything["run"]["model_versions"] == {"churn": "2"}
    assert [c["customer_id"] for c in everything["items"]] == ["c1", "c3", "c2", "c4", "c5"]  # by value at risk
    page2 = get(client, "/api/customers", viewer, page=2, page_size=2).json()
    assert [c["customer_id"] for c in page2["items"]] == ["c2", "c4"] and page2["total"] == 5
    by_p = get(client, "/api/customers", viewer, sort="churn_probability", order="desc").json()
    assert [c["customer_id"] for c in by_p["items"]] == ["c1", "c2", "c3", "c4", "c5"]

    def ids(**filters: object) -> list[str]:
        return [c["customer_id"] for c in get(client, "/api/customers", viewer, **filters).json()["items"]]

    assert ids(tier="high") == ["c1", "c2"]
    assert ids(segment="smb", region="north") == ["c1", "c4"]
    assert ids(theme="billing") == ["c2", "c4"]
    assert ids(theme="pricing") == ["c4"]
    assert ids(reason="engagement") == ["c3", "c5"]
    assert ids(owner="billing") == ["c2", "c4"]
    assert ids(min_value=20) == ["c1", "c3", "c2"]
    assert ids(tier="nonexistent") == []
    assert get(client, "/api/customers", viewer, sort="customer_name").status_code == 422
    choices = get(client, "/api/filters", viewer).json()
    assert choices["tier"] == ["high", "low", "medium"] and "billing" in choices["theme"]


def test_not_yet_contacted_and_the_outreach_log(served, caplog) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    lead = {"Authorization": f"Bearer {tokens['lead']}"}
    with caplog.at_level(logging.DEBUG):
        made = client.post("/api/customers/c3/outreach", headers=lead,
                           json={"channel": "email", "outcome": "saved", "notes": SECRET_NOTE})
    assert made.status_code == 201, made.text
    assert made.json()["contacted_by"] == "lead-holder" and made.json()["action"] == "check in"
    # what the server logged (the test client's own request log is not the server's)
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "/api/customers/{customer_id}/outreach 201" in logged
    assert SECRET_NOTE not in logged and "c3" not in logged and tokens["lead"] not in logged
    ids = [c["customer_id"] for c in get(client, "/api/customers", tokens["viewer"], not_contacted=True).json()["items"]]
    assert ids == ["c1", "c2", "c4", "c5"]
    detail = get(client, "/api/customers/c3", tokens["viewer"]).json()
    assert [o["notes"] for o in detail["outreach"]] == [SECRET_NOTE]
    assert client.post("/api/customers/nobody/outreach", headers=lead, json={"channel": "phone"}).status_code == 404
    bad = client.post("/api/customers/c3/outreach", headers=lead, json={"channel": "pigeon"})
    assert bad.status_code == 422


def test_customer_detail_has_history_and_the_evidence_behind_each_reason(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    detail = get(client, "/api/customers/c1", tokens["viewer"]).json()
    assert [h["churn_probability"] for h in detail["history"]] == pytest.approx([0.85, 0.90])
    (reason,) = detail["customer"]["reasons"]
    assert reason["phrase"] == "2 tickets open in the last 90 days"
    assert [e["id"] for e in reason["evidence"]] == ["t2", "t1"]  # newest first
    assert reason["evidence"][0]["csat"] == 2.0 and reason["evidence"][1]["status"] == "open"
    feedback = get(client, "/api/customers/c2", tokens["viewer"]).json()["customer"]["reasons"][0]["evidence"]
    assert feedback[0]["text"].startswith("<script>") and feedback[0]["sentiment"] == "negative"
    assert get(client, "/api/customers/nobody", tokens["viewer"]).status_code == 404


def test_csv_export_of_a_filtered_list(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    response = get(client, "/api/customers/export.csv", tokens["viewer"], tier="high")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["customer_id"] for r in rows] == ["c1", "c2"]
    assert rows[1]["reasons"] == "negative about billing" and rows[1]["themes"] == "billing"


def test_runs_and_rollback_need_the_publisher_role(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    runs = get(client, "/api/runs", tokens["viewer"]).json()
    assert [r["current"] for r in runs] == [True, False]
    older = runs[1]["id"]
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    publisher = {"Authorization": f"Bearer {tokens['publisher']}"}
    assert client.post(f"/api/runs/{older}/current", headers=viewer).status_code == 403
    assert client.post(f"/api/runs/{older}/current", headers=publisher).status_code == 200
    assert get(client, "/api/customers", tokens["viewer"]).json()["run"]["id"] == older
    assert client.post("/api/runs/9999/current", headers=publisher).status_code == 409


def test_an_empty_database_is_not_ready_and_says_what_to_do(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.begin() as conn:
        token = auth.create_token(conn, "v", "viewer")
    with TestClient(create_app(engine)) as client:
        assert client.get("/api/ready").status_code == 503
        response = get(client, "/api/customers", token)
        assert response.status_code == 404 and "retain score --publish" in response.json()["detail"]
    engine.dispose()


def test_the_api_documents_itself(served) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = served
    spec = client.get("/api/openapi.json").json()
    assert {"/api/customers", "/api/customers/{customer_id}", "/api/customers/{customer_id}/outreach",
            "/api/customers/export.csv", "/api/runs", "/api/health", "/api/ready"} <= set(spec["paths"])
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    # Swagger UI comes from this server, not a CDN (offline, and no third-party script)
    assert "cdn." not in docs.text and "/api/docs-static/swagger-ui-bundle.js" in docs.text
    assert client.get("/api/docs-static/swagger-ui-bundle.js").status_code == 200
    page = client.get("/")
    assert "<title>retain" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_a_revoked_tokens_name_can_be_given_to_a_new_token(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, engine = served
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    with engine.begin() as conn:
        old = auth.create_token(conn, "alice", "lead")
    with engine.begin() as conn:
        assert auth.revoke_token(conn, "alice") == 1
    # What the error for a name in use says to do (revoke it first) must then work.
    with engine.begin() as conn:
        new = auth.create_token(conn, "alice", "viewer")
    assert get(client, "/api/me", new).json()["role"] == "viewer"
    assert get(client, "/api/me", old).status_code == 401
    # through the API as well, and a live name is still refused
    assert client.delete("/api/tokens/alice", headers=admin).status_code == 200
    assert client.post("/api/tokens", json={"name": "alice", "role": "lead"}, headers=admin).status_code == 201
    assert client.post("/api/tokens", json={"name": "alice", "role": "lead"}, headers=admin).status_code == 409
    alices = [t for t in get(client, "/api/tokens", tokens["admin"]).json() if t["name"] == "alice"]
    assert len(alices) == 3 and sum(t["revoked_at"] is None for t in alices) == 1


def test_a_failing_request_logs_and_answers_no_customer_text(served, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    from retain.serve import queries
    from retain.serve.db import outreach_log

    def failing_write(conn, customer_id, contacted_by, channel, outcome, notes, at):  # type: ignore[no-untyped-def]
        # a real database error about the row being written (PostgreSQL quotes the row)
        conn.execute(outreach_log.insert(), {"customer_id": customer_id, "contacted_by": contacted_by,
                                             "channel": channel, "at": None, "notes": notes})

    monkeypatch.setattr(queries, "record_outreach", failing_write)
    with caplog.at_level(logging.DEBUG):
        response = client.post("/api/customers/c3/outreach", headers={"Authorization": f"Bearer {tokens['lead']}"},
                               json={"channel": "email", "notes": SECRET_NOTE})
    assert response.status_code == 500 and SECRET_NOTE not in response.text
    # the server's records with any exception text or traceback (the test client's own are not the server's)
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records if not r.name.startswith("httpx"))
    assert "/api/customers/{customer_id}/outreach failed: IntegrityError" in logged
    assert SECRET_NOTE not in logged and "c3" not in logged


def test_the_total_is_right_when_a_pruned_runs_id_comes_back(database_url: str) -> None:
    """SQLite gives a deleted newest run's id to the next run: a total cached for the old one must not stick."""
    from retain.serve import runs
    from serve_fixtures import AS_OF, evidence_rows, ranked

    engine = open_database(database_url)
    publish_two_runs(engine)
    with engine.begin() as conn:
        token = auth.create_token(conn, "v", "viewer")
    with TestClient(create_app(engine)) as client:
        assert get(client, "/api/customers", token).json()["total"] == 5
        first, second = sorted(r.id for r in runs.list_runs(engine))
        runs.rollback(engine, first)
        assert runs.prune_runs(engine, keep=1) == [second]
        three = ranked(AS_OF + pd.Timedelta(days=30)).head(3)
        runs.publish_run(engine, three, {"model_versions": {"churn": "3"}}, evidence_rows())
        body = get(client, "/api/customers", token).json()
        assert body["run"]["model_versions"] == {"churn": "3"}
        assert len(body["items"]) == 3 and body["total"] == 3
    engine.dispose()


def test_theme_and_reason_filters_match_exactly(database_url: str) -> None:
    """Accented themes match; case counts (as for the other filters); a reason matches its signal only."""
    from retain.serve import runs
    from serve_fixtures import AS_OF, evidence_rows, ranked

    engine = open_database(database_url)
    evidence = evidence_rows()
    evidence.at[3, "themes"] = ["facturación", "50%_off"]
    runs.publish_run(engine, ranked(AS_OF), {"model_versions": {"churn": "1"}}, evidence)
    with engine.begin() as conn:
        token = auth.create_token(conn, "v", "viewer")
    with TestClient(create_app(engine)) as client:
        def ids(**params: object) -> list[str]:
            response = get(client, "/api/customers", token, **params)
            assert response.status_code == 200, response.text
            return [c["customer_id"] for c in response.json()["items"]]

        assert {"facturación", "50%_off"} <= set(get(client, "/api/filters", token).json()["theme"])
        assert ids(theme="facturación") == ["c4"]
        assert ids(theme="50%_off") == ["c4"] and ids(theme="5_%") == [] and ids(theme="%") == []
        assert ids(theme="billing") == ["c2", "c4"] and ids(theme="Billing") == []
        assert ids(reason="repeated_contacts") == ["c1"]
        assert ids(reason="ticket") == [] and ids(reason="t1") == []  # an evidence kind, an evidence id
        assert ids(reason='engagement"') == []
    engine.dispose()


def test_the_export_is_in_the_order_of_the_list(served) -> None:  # type: ignore[no-untyped-def]
    client, tokens, _ = served
    lead = tokens["lead"]
    for customer, at in (("c4", "2025-06-02T09:00:00"), ("c2", "2025-06-03T09:00:00")):
        made = client.post(f"/api/customers/{customer}/outreach", headers={"Authorization": f"Bearer {lead}"},
                           json={"channel": "phone", "contacted_at": at})
        assert made.status_code == 201, made.text
    for order, contacted in (("asc", ["c4", "c2"]), ("desc", ["c2", "c4"])):
        listed = [c["customer_id"] for c in get(client, "/api/customers", lead, sort="last_contacted_at",
                                                     order=order).json()["items"]]
        assert listed == [*contacted, "c1", "c3", "c5"]  # never contacted: last, by rank
        exported = get(client, "/api/customers/export.csv", lead, sort="last_contacted_at", order=order).text
        assert [r["customer_id"] for r in csv.DictReader(io.StringIO(exported))] == listed


def test_contact_times_are_utc_and_never_in_the_future(served) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    client, tokens, _ = served
    lead = {"Authorization": f"Bearer {tokens['lead']}"}

    def log(at: str) -> object:
        return client.post("/api/customers/c3/outreach", headers=lead, json={"channel": "phone", "contacted_at": at})

    assert log("2025-06-02T11:00:00+02:00").json()["at"] == "2025-06-02T09:00:00"  # stored in UTC
    assert log("2025-06-02T09:30:00").json()["at"] == "2025-06-02T09:30:00"  # no zone: UTC
    ahead = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    refused = log(ahead)
    assert refused.status_code == 422 and "future" in refused.json()["detail"]
    detail = get(client, "/api/customers/c3", tokens["viewer"]).json()
    assert [o["contacted_at"] for o in detail["outreach"]] == ["2025-06-02T09:30:00", "2025-06-02T09:00:00"]
    assert get(client, "/api/customers", tokens["viewer"], page=10**18).status_code == 422


def test_the_filter_choices_follow_the_current_run(served) -> None:  # type: ignore[no-untyped-def]
    """The choices are cached per run: a new publish and a rollback each show their own run's."""
    from retain.serve import runs
    from serve_fixtures import AS_OF, evidence_rows, ranked

    client, tokens, engine = served
    before = get(client, "/api/filters", tokens["viewer"]).json()
    assert before["region"] == ["north", "south"] and get(client, "/api/filters", tokens["viewer"]).json() == before
    newer = ranked(AS_OF + pd.Timedelta(days=30)).assign(region="west")
    third = runs.publish_run(engine, newer, {"model_versions": {"churn": "3"}}, evidence_rows())
    assert get(client, "/api/filters", tokens["viewer"]).json()["region"] == ["west"]
    runs.rollback(engine, third - 1)
    assert get(client, "/api/filters", tokens["viewer"]).json() == before


def test_a_customer_id_with_a_slash_can_be_opened_and_contacted(database_url: str) -> None:
    from retain.serve import runs
    from serve_fixtures import AS_OF, ranked

    engine = open_database(database_url)
    listed = ranked(AS_OF)
    listed.loc[0, "customer_id"] = "ACME/001"
    runs.publish_run(engine, listed, {"model_versions": {"churn": "1"}}, None)
    with engine.begin() as conn:
        lead = {"Authorization": f"Bearer {auth.create_token(conn, 'l', 'lead')}"}
    with TestClient(create_app(engine)) as client:
        # as the page asks for it (encodeURIComponent)
        detail = client.get("/api/customers/ACME%2F001", headers=lead)
        assert detail.status_code == 200 and detail.json()["customer"]["customer_id"] == "ACME/001"
        made = client.post("/api/customers/ACME%2F001/outreach", headers=lead, json={"channel": "phone"})
        assert made.status_code == 201 and made.json()["customer_id"] == "ACME/001"
        assert client.get("/api/customers/ACME%2F002", headers=lead).status_code == 404
        assert client.get("/api/customers/export.csv", headers=lead).text.count("ACME/001") == 1


def test_filter_choices_name_reasons_found_only_far_down_the_list(database_url: str) -> None:
    """A purchase log's list starts with big spenders no reason stands out for (CDNOW: the first
    7,000 rows); the reason filter must still offer the reasons further down."""
    from retain.serve.runs import publish_run
    from serve_fixtures import AS_OF, ranked

    engine = open_database(database_url)
    top = ranked(AS_OF).iloc[[4]]
    quiet = top.loc[top.index.repeat(6000)].assign(reason_1=None, reason_1_signal=None, reason_1_evidence=None)
    frame = pd.concat([quiet, ranked(AS_OF).iloc[[0]]], ignore_index=True)
    frame["customer_id"] = [f"k{i}" for i in range(len(frame))]
    frame["rank"] = range(1, len(frame) + 1)
    publish_run(engine, frame, {"model_versions": {"churn": "1"}})
    with engine.begin() as conn:
        token = auth.create_token(conn, "viewer-holder", "viewer")
    with TestClient(create_app(engine)) as client:
        choices = get(client, "/api/filters", token).json()
        assert choices["reason"] == [frame["reason_1_signal"].iloc[-1]]
        assert get(client, "/api/customers", token, reason=choices["reason"][0]).json()["total"] == 1
    engine.dispose()


def test_detail_says_whether_the_run_computed_reasons_for_the_customer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A large run explains only the top of its list: the detail of a customer below it says so."""
    from retain.serve import queries
    from retain.serve.runs import publish_run
    from serve_fixtures import AS_OF, ranked

    engine = open_database(f"sqlite:///{tmp_path / 'retain.db'}")
    listed = ranked(AS_OF)
    below = listed["rank"] > 2
    listed.loc[below, ["reason_1", "reason_1_signal", "reason_1_evidence"]] = None
    publish_run(engine, listed, {"model_versions": {"churn": "1"}, "reasons": {"explained": 2, "of": 5, "through_rank": 2}})
    with engine.connect() as conn:
        computed = {c: queries.customer_detail(conn, c)["customer"]["reasons_computed"] for c in listed["customer_id"]}
    engine.dispose()
    assert computed == dict(zip(listed["customer_id"], ~below, strict=True))
