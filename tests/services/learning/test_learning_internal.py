"""``GET /internal/courses``: what the programs service validates course ids by."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

Factory = Callable[..., Awaitable[dict[str, Any]]]


async def test_internal_courses_answers_for_the_ids_that_exist(
    client: httpx.AsyncClient, make_course: Factory
):
    one = await make_course(title="One", lessons=1)
    four = await make_course(title="Four", lessons=4)
    missing = str(uuid.uuid4())

    response = await client.get(
        "/internal/courses", params={"ids": f"{one['id']}, {missing},{four['id']}"}
    )

    assert response.status_code == 200
    items = sorted(response.json()["items"], key=lambda item: item["title"])
    assert items == [
        {"id": four["id"], "title": "Four", "lesson_count": 4},
        {"id": one["id"], "title": "One", "lesson_count": 1},
    ]


@pytest.mark.parametrize("ids", ["", ",", None])
async def test_internal_courses_without_ids_is_empty(
    client: httpx.AsyncClient, ids: str | None
):
    params = {} if ids is None else {"ids": ids}

    response = await client.get("/internal/courses", params=params)

    assert response.status_code == 200
    assert response.json() == {"items": []}


async def test_internal_courses_malformed_id_is_422_naming_it(
    client: httpx.AsyncClient,
):
    response = await client.get(
        "/internal/courses", params={"ids": f"{uuid.uuid4()},course-7"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "ids", "message": "'course-7' is not a course id"}
    ]


async def test_internal_courses_too_many_ids_is_422(client: httpx.AsyncClient):
    ids = ",".join(str(uuid.uuid4()) for _ in range(501))

    response = await client.get("/internal/courses", params={"ids": ids})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "ids", "message": "lists 501 ids; at most 500 at once"}
    ]
