"""How a FastAPI service answers errors: RFC 9457 problem+json, always.

Field errors carry an ``errors`` list of ``{"field", "message"}`` that names
the field at fault without echoing what was sent (it may be a password).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from services.common.errors import ServiceError
from services.common.problems import PROBLEM_JSON, problem


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class Problem(ServiceError):
    """An error that answers the request it happened in."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


def invalid(errors: Sequence[FieldError]) -> Problem:
    """A 422 problem listing every field at fault."""
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return Problem(
        422,
        f"the request is invalid: {detail}",
        errors=[e.to_json() for e in errors],
    )


def problem_response(
    status: int,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem(status, detail, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers) if headers else None,
    )


def install_handlers(app: FastAPI) -> None:
    """Answer our own problems, HTTP errors and validation errors as problem+json."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.detail, headers=exc.headers, **exc.extra)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        detail = f"there is no route {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.url.path} does not answer {request.method}"
    else:
        detail = str(exc.detail)
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    problem = invalid(errors)
    return problem_response(problem.status, problem.detail, **problem.extra)


def _field_error(error: Mapping[str, Any]) -> FieldError:
    # loc is e.g. ("body", "password") or ("query", "limit"); "input" is
    # deliberately ignored: it may hold a password.
    if error.get("type") == "json_invalid":
        reason = error.get("ctx", {}).get("error", "malformed")
        return FieldError("body", f"is not valid JSON: {reason}")
    location = [str(part) for part in error.get("loc", ())]
    field = ".".join(location[1:]) or (location[0] if location else "body")
    if error.get("type") == "value_error" and "error" in error.get("ctx", {}):
        # A validator's own words, without pydantic's "Value error, " before them.
        return FieldError(field, str(error["ctx"]["error"]))
    return FieldError(field, str(error.get("msg", "is invalid")))
