"""The `/demo` page: two browser windows editing one resource through the gateway.

Served only when the demo is enabled (``COLLABGATE_DEMO_ENABLED``; unset, whenever development
keys are, which is what ``make run`` / ``collabgate dev`` does). The page
(``index.html`` beside this file) loads one pre-built bundle from ``../static/`` — yjs and
y-websocket bundled by esbuild from ``demo.js`` (``make yjs-demo-bundle``) — so serving it needs
neither Node nor a CDN.

``/demo/token?sub=…&role=…`` mints a development token for the page. It exists only when the
demo **and** development keys are both enabled: anybody who can reach it can become any user,
which is the point of a demo and unacceptable anywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from collabgate.auth.devkeys import ensure_dev_keys, mint_token
from collabgate.auth.principal import Role
from collabgate.settings import Settings

PAGE = Path(__file__).with_name("index.html")
STATIC = Path(__file__).parent.parent / "static"
TOKEN_TTL_SECONDS = 3600
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
#: The page talks to its own origin only (its WebSocket scheme included).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'self'"
)


def demo_enabled(settings: Settings) -> bool:
    """``COLLABGATE_DEMO_ENABLED``; unset, the demo follows the development keys."""
    return settings.dev_keys if settings.demo_enabled is None else settings.demo_enabled


def demo_routes(settings: Settings) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/demo", _redirect_to_page),
        Route("/demo/", _page),
        Mount("/demo/static", app=StaticFiles(directory=STATIC), name="demo-static"),
    ]
    if settings.dev_keys:
        routes.append(Route("/demo/token", _TokenMinter(settings).mint))
    return routes


async def _redirect_to_page(request: Request) -> Response:
    query = request.url.query
    return RedirectResponse("/demo/" + (f"?{query}" if query else ""), status_code=307)


async def _page(_: Request) -> Response:
    return FileResponse(PAGE, media_type="text/html", headers={"Content-Security-Policy": _CSP})


class _TokenMinter:
    """``GET /demo/token?sub=alice&role=nurse`` → ``{"token": …}``, signed with the dev key."""

    def __init__(self, settings: Settings) -> None:
        self._keys_dir = settings.dev_keys_dir
        self._role_claim = settings.jwt_role_claim

    async def mint(self, request: Request) -> Response:
        sub = request.query_params.get("sub", "")
        role = request.query_params.get("role", Role.NURSE.value)
        if not _USER_ID.fullmatch(sub):
            return _bad_request("sub must be 1-64 letters, digits or _.@- (starting alphanumeric)")
        if role not in {r.value for r in Role}:
            return _bad_request(f"role must be one of {', '.join(r.value for r in Role)}")
        token = mint_token(
            ensure_dev_keys(self._keys_dir),
            sub=sub,
            role=role,
            ttl_seconds=TOKEN_TTL_SECONDS,
            name=sub,
            role_claim=self._role_claim,
        )
        return JSONResponse({"token": token, "expiresIn": TOKEN_TTL_SECONDS})


def _bad_request(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)
