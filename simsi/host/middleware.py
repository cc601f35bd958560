"""The middleware of every host route: token check, drain, request count, JSON errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from simsi.host.responses import HOST_HEADER, error_response
from simsi.host.routes import SERVER

#: Routes that respond without a token and while draining, so probes always work.
OPEN_ROUTES = frozenset({"healthz", "readyz"})

_ROUTE_LIST = (
    "POST /v1/instances/{id}/request, GET /v1/instances/{id}/connect (WebSocket), "
    "GET /v1/placement/{id}, GET /healthz, GET /readyz, GET /metrics"
)


@web.middleware
async def host_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Check the token, reject work while draining, count requests, turn errors into JSON."""
    server = request.app[SERVER]
    route = request.match_info.route
    name = route.name
    resource = route.resource
    label = resource.canonical if resource is not None else "unmatched"
    response: web.StreamResponse
    if name not in OPEN_ROUTES and not server.authorized(request):
        response = error_response(
            401,
            "missing or invalid bearer token; send 'Authorization: Bearer <token>' with the "
            "token configured by --auth-token / SIMSI_AUTH_TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="simsi"'},
        )
    elif server.draining and name not in OPEN_ROUTES and name != "metrics":
        response = error_response(
            503,
            f"host {server.config.host_id!r} is draining after a stop signal; retry on "
            "the next incarnation",
            headers={"Retry-After": "1"},
        )
    else:
        counted = name != "connect"
        if counted:
            server.enter_request()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _http_error(request, exc, server.config.max_body_bytes)
        except Exception as exc:
            instance_id = request.match_info.get("id")
            server.observer.error_swallowed(
                f"{request.method} {label}", exc, detail=f"instance {instance_id!r}"
            )
            response = error_response(
                500,
                f"internal error while handling {request.method} {request.path} "
                f"(instance {instance_id!r}): {type(exc).__name__}: {exc}",
            )
        finally:
            if counted:
                server.leave_request()
    if not response.prepared:
        response.headers.setdefault(HOST_HEADER, server.config.host_id)
    server.metrics.count_http(label, response.status)
    return response


def _http_error(request: web.Request, exc: web.HTTPException, max_body: int) -> web.Response:
    """Turn an aiohttp HTTP exception (routing, body size) into a JSON error body."""
    status = exc.status
    if status == 404:
        message = f"no route for {request.method} {request.path}; the routes are {_ROUTE_LIST}"
    elif status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        message = f"method {request.method} is not allowed on {request.path}; use {allowed}"
    elif status == 413:
        message = (
            f"request body is larger than the limit of {max_body} bytes; send a smaller body "
            "or raise --max-body-bytes / SIMSI_MAX_BODY_BYTES"
        )
    else:
        message = exc.text or exc.reason
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(status, message, headers=headers)
