"""Which users and courses exist, asked of the users and learning services.

An admin's request must learn at once that an id is unknown, so these are
HTTP calls (``services.common.internal``), not events. Ids go in batches, so
that a long list never makes an over-long URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import httpx

from services.common.internal import InternalClient, Unreachable
from services.programs.errors import DependencyDown

BATCH = 100
USERS_PATH = "/internal/users"
COURSES_PATH = "/internal/courses"


class Directory:
    def __init__(self, users: InternalClient, learning: InternalClient) -> None:
        self.users = users
        self.learning = learning

    async def missing_users(self, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """The ids among ``ids`` that name no user, in the order given."""
        found = await _found(self.users, USERS_PATH, ids)
        return [user_id for user_id in ids if user_id not in found]

    async def missing_courses(self, ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """The ids among ``ids`` that name no course, in the order given."""
        found = await _found(self.learning, COURSES_PATH, ids)
        return [course_id for course_id in ids if course_id not in found]

    async def aclose(self) -> None:
        await self.users.aclose()
        await self.learning.aclose()


async def _found(
    client: InternalClient, path: str, ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), BATCH):
        batch = ",".join(str(item) for item in unique[start : start + BATCH])
        try:
            body = await client.get_json(path, {"ids": batch})
            found.update(uuid.UUID(str(item["id"])) for item in body["items"])
        except Unreachable as exc:
            raise DependencyDown(str(exc)) from exc
        except httpx.HTTPStatusError as exc:
            raise DependencyDown(
                f"the {client.service} service refused {path}: "
                f"HTTP {exc.response.status_code}"
            ) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise DependencyDown(
                f"the {client.service} service answered {path} with an unexpected "
                f"body: {exc!r}"
            ) from exc
    return found
