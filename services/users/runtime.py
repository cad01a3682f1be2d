"""What a running service holds between requests, and how routes get at it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.users.keys import KeyRing
from services.users.passwords import Passwords
from services.users.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    keys: KeyRing
    passwords: Passwords


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)  # set by the lifespan before any request
    return runtime


Services = Annotated[Runtime, Depends(get_runtime)]
