"""JSON responses and the mapping from errors to HTTP status codes.

Every error body has the form ``{"error": {"type": ..., "message": ...}}``, with
extra keys where they help the caller act (``owner`` on 421, ``instance_id`` on
handler errors).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from simsi.core.errors import (
    HandlerError,
    HandlerTimeoutError,
    LifecycleError,
    NotOwnerError,
)

JSON = "application/json"

#: Header naming the host that produced a response; forwarded responses keep the owner's.
HOST_HEADER = "X-Simsi-Host"

#: Error type names of plain HTTP statuses raised by aiohttp (routing, body size).
STATUS_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    421: "NotOwner",
    426: "UpgradeRequired",
    500: "InternalError",
    502: "PeerUnavailable",
    503: "Unavailable",
    504: "Timeout",
}


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return a response whose body is ``body`` encoded as compact JSON."""
    text = json.dumps(body, separators=(",", ":"))
    return web.Response(body=text.encode(), status=status, content_type=JSON, headers=headers)


def error_response(
    status: int,
    message: str,
    *,
    type_name: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """Return ``{"error": {"type", "message", ...extra}}`` with ``status``."""
    error: dict[str, Any] = {
        "type": type_name or STATUS_TYPES.get(status, "Error"),
        "message": message,
    }
    error.update(extra)
    return json_response({"error": error}, status, headers)


def is_timeout(error: HandlerError) -> bool:
    """Return whether the handler ran past its timeout (not whether it raised ``TimeoutError``)."""
    return isinstance(error, HandlerTimeoutError)


def handler_error_response(error: HandlerError) -> web.Response:
    """Map a handler failure to 504 (timeout) or 500 (the handler raised)."""
    cause = error.__cause__
    if is_timeout(error):
        return error_response(
            504,
            f"{error.handler} of instance {error.instance_id!r} timed out: {cause}; "
            "make the handler faster or raise --request-timeout",
            type_name="HandlerTimeout",
            instance_id=error.instance_id,
        )
    return error_response(
        500,
        str(error),
        type_name="HandlerError",
        instance_id=error.instance_id,
        handler=error.handler,
        cause=type(cause).__name__ if cause is not None else None,
    )


def not_owner_response(
    error: NotOwnerError, owner_url: str | None, forwarded: bool
) -> web.Response:
    """Return 421 Misdirected Request, naming the owner and, if known, its URL."""
    if forwarded:
        message = (
            f"instance {error.instance_id!r} (shard {error.shard}) is owned by {error.owner!r}, "
            f"not {error.host_id!r}, and forwarded requests are not forwarded again; "
            "the hosts disagree on --hosts or --shards, or a rollout is in progress"
        )
    else:
        message = str(error)
    return error_response(
        421,
        message,
        owner=error.owner,
        owner_url=owner_url,
        shard=error.shard,
        instance_id=error.instance_id,
    )


def unavailable_response(error: LifecycleError) -> web.Response:
    """Return 503 for a host that is draining or not started, with a retry hint."""
    return error_response(
        503,
        f"{error}; retry shortly, another incarnation of the host will serve it",
        headers={"Retry-After": "1"},
    )
