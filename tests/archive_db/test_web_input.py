"""Bad input to the web catalogue is the caller's error (400, 404, 413 or 422, with a message),
never a 500, on SQLite and on PostgreSQL (whose columns are 32-bit and refuse NUL bytes)."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from flows.db import ensure_schema, sessions_for
from flows.media import StoreMedia

TOKEN = "a token"


def cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture()
def client(settings) -> TestClient:
    from archive_db.web.app import create_app

    ensure_schema(settings.db.url)
    return TestClient(
        create_app(sessions_for(settings.db.url), StoreMedia(settings), TOKEN), raise_server_exceptions=False
    )


BAD_SEARCHES = [
    {"after": "not base64 at all!"},
    {"after": cursor({"a": 1})},
    {"after": cursor([1, 2, 3])},
    {"after": cursor([1, "x"])},
    {"after": cursor([1, 2**63])},
    {"after": cursor([1, -1])},
    {"after": cursor([{"x": 1}, 5])},
    {"after": cursor([2**63, 5])},
    {"after": cursor([True, 5])},
    {"after": cursor(["2024", 5]), "sort": "date"},
    {"after": cursor([5, 5]), "sort": "key"},
    {"after": cursor(["a\x00b", 5]), "sort": "key"},
    {"after": cursor([[1], 5]), "sort": "newest"},
    {"year_from": str(2**31)},
    {"year_to": str(-(2**63))},
    {"year_from": "1e999"},
    {"year_from": "nineteen"},
    {"text": "a\x00b"},
    {"collection": "\x00"},
    {"model": "m\x00"},
    {"kind": "k\x00"},
    {"limit": str(2**63)},
    {"limit": "0"},
    {"sort": "nope"},
    {"status": "nope"},
]


@pytest.mark.parametrize("params", BAD_SEARCHES, ids=range(len(BAD_SEARCHES)))
def test_bad_search_parameters_are_400_on_the_api_and_the_page(client, params):
    for path in ("/api/search", "/search"):
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params, response.status_code, response.text[:300])
        if path.startswith("/api/"):
            assert response.json()["error"]


@pytest.mark.parametrize("number", [0, -1, 2**31, 2**31 - 1, 2**63, 2**64 + 5])
def test_ids_out_of_any_columns_range_are_404(client, number):
    for path in (
        f"/api/items/{number}",
        f"/api/items/{number}/lineage",
        f"/media/items/{number}/thumbnail",
        f"/media/derivatives/{number}/preview",
        f"/items/{number}",
    ):
        response = client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code, response.text[:300])


BAD_BODIES = [
    b'{"user": "a\\u0000b", "state": "approved"}',
    b'{"user": "curator", "state": "approved", "note": "x\\u0000"}',
    b'{"user": "\\ud800", "state": "approved"}',
    b"1e999",
    b'{"user": 1e999, "state": "approved"}',
    b'{"user": "curator", "state": "approved", "note": "\\udfff"}',
    b"[]",
    b"not json",
    b'"\\ud800"',
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_are_422_with_a_message_not_an_echo(client, body):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for method, path in (
        ("POST", "/api/derivatives/1/review"),
        ("POST", "/api/derivatives/1/make-current"),
        ("PATCH", "/api/items/1/metadata"),
    ):
        response = client.request(method, path, content=body, headers=auth)
        assert response.status_code in (404, 422), (path, body, response.status_code, response.text[:300])
        assert response.json()["error"]
    metadata = b'{"user": "curator", "fields": {"title": "a\\u0000b"}}'
    response = client.patch("/api/items/1/metadata", content=metadata, headers=auth)
    assert response.status_code == 422 and "NUL" in response.json()["error"]


def test_a_huge_body_is_refused_before_it_is_read(client):
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    body = b'{"user": "curator", "fields": {"title": "' + b"x" * (2 << 20) + b'"}}'
    response = client.patch("/api/items/1/metadata", content=body, headers=auth)
    assert response.status_code == 413 and "over" in response.json()["error"]
    # sent in chunks, with no length declared: refused the same way, not read to its end
    response = client.patch("/api/items/1/metadata", content=iter([body[:1000], body[1000:]]), headers=auth)
    assert response.status_code == 411 and "length" in response.json()["error"]


def test_the_search_parameters_are_in_the_openapi_document(client):
    from archive_db.search import SearchQuery

    schema = client.get("/api/openapi.json").json()
    documented = {p["name"] for p in schema["paths"]["/api/search"]["get"]["parameters"]}
    assert documented == set(SearchQuery.__dataclass_fields__)
