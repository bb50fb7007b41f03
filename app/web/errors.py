"""JSON errors: every failure the API reports has the shape {"error": {"code", "message"}}."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.json_errors import error_body


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(code, message), status, headers=headers, media_type="application/json")


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid",
}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    status: int = getattr(exc, "status_code", 500)
    detail: Any = getattr(exc, "detail", "error")
    return error_response(status, _HTTP_CODES.get(status, "error"), str(detail))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    # Never a stack trace to the client; the server log has it.
    return JSONResponse({"error": {"code": "internal", "message": "internal error"}}, status_code=500)
