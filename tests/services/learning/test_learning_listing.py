"""Listing courses: offset pages with a total (v1), cursor pages (v2), text search."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from learning_testkit import new_learner

pytestmark = pytest.mark.anyio

MakeCourse = Callable[..., Awaitable[dict[str, Any]]]
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


async def tagged_courses(make_course: MakeCourse, count: int) -> tuple[str, list[str]]:
    """``count`` new courses sharing a unique word; their ids newest first."""
    tag = f"tag{uuid.uuid4().hex[:10]}"
    made = [
        await make_course(title=f"{tag} course {n}", description="Tagged.")
        for n in range(count)
    ]
    return tag, [course["id"] for course in reversed(made)]


async def v1(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/api/v1/courses", params=params, headers=new_learner())


async def v2(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.get("/api/v2/courses", params=params, headers=new_learner())


def ids(response: httpx.Response) -> list[str]:
    return [item["id"] for item in response.json()["items"]]


async def test_v1_pages_newest_first_with_the_total(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    tag, newest_first = await tagged_courses(make_course, 5)

    pages = [await v1(client, q=tag, limit=2, offset=n) for n in (0, 2, 4, 6)]

    assert [page.status_code for page in pages] == [200] * 4
    assert [page.json()["total"] for page in pages] == [5] * 4
    assert [ids(page) for page in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
        [],
    ]
    item = pages[0].json()["items"][0]
    assert set(item) == {"id", "title", "description", "lesson_count", "created_at"}
    assert item["lesson_count"] == 3
    assert item["title"] == f"{tag} course 4"


async def test_v1_without_q_lists_every_course_in_the_database_order(
    client: httpx.AsyncClient, make_course: MakeCourse, db: Any
):
    await tagged_courses(make_course, 3)
    expected = await db.fetch(
        "SELECT id FROM learning.courses ORDER BY created_at DESC, id DESC LIMIT 100"
    )

    response = await v1(client, limit=100)

    assert response.status_code == 200
    assert response.json()["total"] == await db.fetchval(
        "SELECT count(*) FROM learning.courses"
    )
    assert ids(response) == [str(row["id"]) for row in expected]


async def test_v1_default_page_is_20(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    tag, newest_first = await tagged_courses(make_course, 21)

    response = await v1(client, q=tag)

    assert ids(response) == newest_first[:20]
    assert response.json()["total"] == 21


@pytest.mark.parametrize(
    ("q", "matches"),
    [
        ("quantum", ["physics"]),
        ("QUANTUM Entanglement", ["physics"]),
        ("entang", ["physics"]),
        ("quantum entang", ["physics"]),
        ("quant entanglement", []),
        ("gardening", ["garden"]),
        ("soil", ["garden"]),
        ("course", ["physics", "garden"]),
        ("quantum soil", []),
    ],
)
async def test_v1_q_searches_titles_and_descriptions(
    client: httpx.AsyncClient, make_course: MakeCourse, q: str, matches: list[str]
):
    tag = f"tag{uuid.uuid4().hex[:10]}"
    made = {
        "physics": await make_course(
            title=f"Quantum entanglement {tag}", description="A physics course."
        ),
        "garden": await make_course(
            title=f"Gardening {tag}", description="A course on soil and seeds."
        ),
    }

    response = await v1(client, q=f"{tag} {q}")

    assert response.status_code == 200
    assert sorted(ids(response)) == sorted(made[name]["id"] for name in matches)
    assert response.json()["total"] == len(matches)


async def test_v1_q_without_words_matches_nothing(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    await make_course()

    response = await v1(client, q="?!")

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0}


async def test_v1_blank_q_does_not_narrow(
    client: httpx.AsyncClient, make_course: MakeCourse, db: Any
):
    await make_course()

    response = await v1(client, q="   ")

    assert response.json()["total"] == await db.fetchval(
        "SELECT count(*) FROM learning.courses"
    )


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("{tag} & alpha | !beta", True),
        ("({tag}:* <-> alpha)", True),
        ("{tag}'s alpha", False),
        ("{tag}'); DROP TABLE learning.courses; --", False),
    ],
)
async def test_v1_q_with_tsquery_syntax_is_taken_as_words(
    client: httpx.AsyncClient, make_course: MakeCourse, q: str, found: bool
):
    tag = f"tag{uuid.uuid4().hex[:10]}"
    course = await make_course(title=f"Alpha {tag} beta")

    response = await v1(client, q=q.format(tag=tag))

    assert response.status_code == 200
    assert ids(response) == ([course["id"]] if found else [])


@pytest.mark.parametrize(
    ("title", "q"),
    [
        ("Safety first (gw0-2)", "Safety first (gw0-2)"),  # "-2" is a word to Postgres
        ("Release notes v1.2", "notes v1.2"),
        ("Well-known patterns", "well-kno"),  # a compound's last part, half typed
        ("Main-12 review", "main-12"),
    ],
)
async def test_v1_q_splits_words_as_the_course_text_was_split(
    client: httpx.AsyncClient, make_course: MakeCourse, title: str, q: str
):
    tag = f"tag{uuid.uuid4().hex[:10]}"
    course = await make_course(title=f"{tag} {title}")

    response = await v1(client, q=f"{tag} {q}")

    assert ids(response) == [course["id"]]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": 0}, "limit", "Input should be greater than or equal to 1"),
        ({"limit": 101}, "limit", "Input should be less than or equal to 100"),
        (
            {"limit": "many"},
            "limit",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ({"offset": -1}, "offset", "Input should be greater than or equal to 0"),
        ({"q": "x" * 201}, "q", "String should have at most 200 characters"),
        ({"q": "a\x00b"}, "q", NUL_MESSAGE),
    ],
)
async def test_v1_bad_query_is_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, Any], field: str, message: str
):
    response = await v1(client, **params)

    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": field, "message": message}]


@pytest.mark.parametrize("q", ["a\x00b", "\x00"])
async def test_v2_q_with_nul_is_422_naming_it(client: httpx.AsyncClient, q: str):
    response = await v2(client, q=q)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": "q", "message": NUL_MESSAGE}]


async def test_v2_cursor_walks_every_page_in_the_v1_order(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    tag, newest_first = await tagged_courses(make_course, 5)
    pages: list[dict[str, Any]] = []
    cursor: str | None = None

    while len(pages) < 10:
        params = {"q": tag, "limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await v2(client, **params)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            break

    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    walked = [item["id"] for page in pages for item in page["items"]]
    assert walked == newest_first
    assert walked == ids(await v1(client, q=tag, limit=100))
    assert set(pages[0]) == {"items", "next_cursor"}


async def test_v2_last_full_page_has_no_next_cursor(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    tag, newest_first = await tagged_courses(make_course, 2)

    response = await v2(client, q=tag, limit=2)

    assert response.json() == {
        "items": (await v1(client, q=tag)).json()["items"],
        "next_cursor": None,
    }
    assert ids(response) == newest_first


async def test_v2_without_q_walks_the_whole_catalogue(
    client: httpx.AsyncClient, make_course: MakeCourse, db: Any
):
    await tagged_courses(make_course, 3)
    expected = await db.fetch(
        "SELECT id FROM learning.courses ORDER BY created_at DESC, id DESC"
    )
    walked: list[str] = []
    cursor: str | None = None

    for _ in range(len(expected) + 1):
        response = await v2(client, limit=7, **({"cursor": cursor} if cursor else {}))
        walked += ids(response)
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    assert walked == [str(row["id"]) for row in expected]


async def test_v2_cursor_is_opaque_and_url_safe(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    tag, _ = await tagged_courses(make_course, 2)

    cursor = (await v2(client, q=tag, limit=1)).json()["next_cursor"]

    assert isinstance(cursor, str)
    assert set(cursor) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


async def test_v2_cursor_time_in_another_offset_is_the_same_position(
    client: httpx.AsyncClient, make_course: MakeCourse
):
    tag, _ = await tagged_courses(make_course, 3)
    cursor = (await v2(client, q=tag, limit=1)).json()["next_cursor"]
    position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    at = datetime.fromisoformat(position["t"])
    shifted = {
        **position,
        "t": at.astimezone(timezone(timedelta(hours=-9))).isoformat(),
    }

    expected = await v2(client, q=tag, limit=1, cursor=cursor)
    response = await v2(
        client, q=tag, limit=1, cursor=b64(json.dumps(shifted).encode())
    )

    assert response.status_code == 200, response.text
    assert ids(response) == ids(expected)


async def test_v2_q_without_words_matches_nothing(client: httpx.AsyncClient):
    response = await v2(client, q="--")

    assert response.json() == {"items": [], "next_cursor": None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


SOME_ID = "0b7f0c1e-8d2a-4f57-9a43-6c1e2d3f4a5b"


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("not a cursor!", id="not-base64"),
        pytest.param("%%%", id="symbols"),
        pytest.param(b64(b"\xff\xfe"), id="not-utf8"),
        pytest.param(b64(b"not json"), id="not-json"),
        pytest.param(b64(b"[1, 2]"), id="not-an-object"),
        pytest.param(b64(b'{"t": "2024-01-01T00:00:00+00:00"}'), id="no-id"),
        pytest.param(
            b64(json.dumps({"t": "yesterday", "i": SOME_ID}).encode()), id="bad-time"
        ),
        pytest.param(b64(json.dumps({"t": 5, "i": SOME_ID}).encode()), id="time-int"),
        pytest.param(b64(b'{"t": "2024-01-01T00:00:00+00:00", "i": "x"}'), id="bad-id"),
        pytest.param(
            b64(json.dumps({"t": "2024-01-01T00:00:00", "i": SOME_ID}).encode()),
            id="naive-time",
        ),
        # Well formed, but before year 1 or after 9999 once in UTC.
        pytest.param(
            b64(json.dumps({"t": "0001-01-01T00:00:00+14:00", "i": SOME_ID}).encode()),
            id="time-before-year-1-in-utc",
        ),
        pytest.param(
            b64(json.dumps({"t": "9999-12-31T23:59:59-14:00", "i": SOME_ID}).encode()),
            id="time-after-year-9999-in-utc",
        ),
    ],
)
async def test_v2_malformed_cursor_is_422_naming_it(
    client: httpx.AsyncClient, cursor: str
):
    response = await v2(client, cursor=cursor)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {
            "field": "cursor",
            "message": "is not a cursor this API returned; start again without one",
        }
    ]


async def test_v2_overlong_cursor_is_422(client: httpx.AsyncClient):
    response = await v2(client, cursor="A" * 201)

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "cursor", "message": "String should have at most 200 characters"}
    ]


@pytest.mark.parametrize(
    ("params", "field"), [({"limit": 0}, "limit"), ({"limit": 101}, "limit")]
)
async def test_v2_bad_limit_is_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
):
    response = await v2(client, **params)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
