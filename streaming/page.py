"""The command-center page and the API's docs, from local files only: `/` is the page
(`<static>/page/index.html`), `/static/` its assets and the vendored Swagger UI and ReDoc, and
`/docs` and `/redoc` load those rather than a CDN, so a machine without internet shows them all.

None of these wants a token: the page asks the operator for one (it holds no secret) and the docs
send the one pasted into them. They are plain Starlette routes, so they stay out of the OpenAPI
document and of the grants table (`streaming/grants.py`), which list the REST API alone.

`/static/` is gzipped (its own `GZipMiddleware`: the webhook fast path, `/ws` and the REST API
never pass through it) and cached by URL: a file whose name carries a content hash, or a URL with
`?v=`, is immutable for a year; anything else is revalidated by its `ETag` (a 304 costs no body).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Receive, Scope, Send

STATIC_PREFIX = "/static"
INDEX = "page/index.html"
SWAGGER_JS = "vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "vendor/swagger-ui/swagger-ui.css"
REDOC_JS = "vendor/redoc/redoc.standalone.js"
# Inline, so the docs ask no host for an icon (FastAPI's default is fastapi.tiangolo.com's).
FAVICON = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
           "%3Crect width='16' height='16' rx='3' fill='%23234'/%3E%3C/svg%3E")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# `app.3f9a2c1b.js`, `index-B4kq9Z2x.css`: 8+ letters and digits, at least one digit (not `.standalone.`).
HASHED = re.compile(r"[.-](?=[A-Za-z0-9_]*\d)[A-Za-z0-9_]{8,}\.[A-Za-z0-9]+$")
# The docs may load nothing from elsewhere: ReDoc 2's side menu asks cdn.redoc.ly for its logo whatever
# its options say, and a future Swagger UI may call out too. The browser refuses such a request before
# it leaves (ReDoc then hides the image). Inline script and style: FastAPI's HTML and both UIs use them.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")
# The page runs only its own script (no inline script, nothing from elsewhere); styles may be inline
# (uPlot and Preact set element styles); its socket and REST calls go to this origin only.
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'")
# Smaller bodies gain less than the gzip header and the CPU cost.
GZIP_MIN_BYTES = 1024

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Command Center: the page is not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>The command-center page is not built</h1>
<p>This sidecar found no <code>{index}</code>. The repository ships the page built; to build it
again, <code>make web</code> (<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>) writes
<code>streaming/static/page/</code>. Then reload.</p>
<p>The sidecar itself is running: the REST API is described at <a href="/docs">/docs</a>,
and <a href="/healthz">/healthz</a> shows its state.</p>
</body></html>
"""


class Assets(StaticFiles):
    """StaticFiles with a `Cache-Control` by URL (module docstring), also on its 304s, and no start-up
    check of the folder: a missing build is a 404 per file, and `/` says how to build it."""

    def file_response(self, full_path, stat_result: os.stat_result, scope: Scope, status_code: int = 200) -> Response:
        response = FileResponse(full_path, status_code=status_code, stat_result=stat_result)
        versioned = "v" in parse_qs(scope.get("query_string", b"").decode("latin-1"))
        response.headers["Cache-Control"] = (
            IMMUTABLE if versioned or HASHED.search(os.path.basename(full_path)) else REVALIDATE)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response

    async def check_config(self) -> None:
        return None


class StaticMount:
    """`/static/`, from the folder the app's settings name (`CC_STATIC_DIR`), read at request time:
    the app is built before its lifespan reads the settings."""

    def __init__(self) -> None:
        self._by_root: dict[Path, GZipMiddleware] = {}

    def assets(self, root: Path) -> Assets:
        return self._app(root).app  # type: ignore[return-value]

    def _app(self, root: Path) -> GZipMiddleware:
        app = self._by_root.get(root)
        if app is None:
            app = self._by_root[root] = GZipMiddleware(Assets(directory=root, check_dir=False),
                                                       minimum_size=GZIP_MIN_BYTES)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(_root(scope["app"]))(scope, receive, send)


def _root(app) -> Path:
    return app.state.settings.static_root


def asset_url(root: Path, name: str) -> str:
    """`/static/<name>?v=<its size and mtime, hashed>`: cached for good, and a new copy is a new URL."""
    try:
        stat = os.stat(root / name)
    except OSError:
        return f"{STATIC_PREFIX}/{name}"
    version = hashlib.sha1(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{STATIC_PREFIX}/{name}?v={version}"


def install(app: FastAPI) -> None:
    """Add `/`, `/docs`, `/redoc` and `/static/` to `app` (built with `docs_url=None, redoc_url=None`)."""
    static = StaticMount()

    async def page(request: Request) -> Response:
        root = _root(request.app)
        try:
            response = await static.assets(root).get_response(INDEX, request.scope)
            response.headers["Content-Security-Policy"] = PAGE_CSP
            return response
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
        return HTMLResponse(NOT_BUILT.format(index=root / INDEX), status_code=503,
                            headers={"Cache-Control": "no-store"})

    async def swagger_ui(request: Request) -> Response:
        root = _root(request.app)
        html = get_swagger_ui_html(
            openapi_url=request.app.openapi_url, title=f"{request.app.title} - Swagger UI",
            swagger_js_url=asset_url(root, SWAGGER_JS), swagger_css_url=asset_url(root, SWAGGER_CSS),
            swagger_favicon_url=FAVICON, oauth2_redirect_url=None,
            # No badge from the online validator: nothing on the page may call out.
            swagger_ui_parameters={"validatorUrl": None})
        html.headers.update({"Cache-Control": REVALIDATE, "Content-Security-Policy": DOCS_CSP})
        return html

    async def redoc(request: Request) -> Response:
        html = get_redoc_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - ReDoc",
                              redoc_js_url=asset_url(_root(request.app), REDOC_JS), redoc_favicon_url=FAVICON,
                              with_google_fonts=False)
        html.headers.update({"Cache-Control": REVALIDATE, "Content-Security-Policy": DOCS_CSP})
        return html

    app.add_route("/", page, methods=["GET"], include_in_schema=False)
    app.add_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.mount(STATIC_PREFIX, static, name="static")
