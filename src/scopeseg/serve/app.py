"""The FastAPI app: JSON API + the hand-written front end (``static/``), every asset served from the package.

Why FastAPI/Starlette and not Gradio: the app needs server-side state a page reload finds again (open media,
labels, jobs), a canvas with box/point tools and per-request latency under 100 ms, and strict control of every
path and error answer; a small hand-written front end over a typed JSON API gives that with two light
dependencies (fastapi, uvicorn) and no CDN, where Gradio would pull a large front-end bundle and its own file
serving rules.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import ModelError, ScopesegError
from .config import ServeConfig
from .files import Forbidden, NotFound, Roots, TooLarge
from .jobs import JobManager
from .media import MediaStore
from .models import ModelHub

log = logging.getLogger(__name__)
TOKEN_HEADER = "x-scopeseg-token"
TOKEN_COOKIE = "scopeseg_token"
#: the browser may load nothing from elsewhere (no CDN), and overlays come as data: URLs
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass
class Server:
    """Everything the routes share: configuration, roots, open media, models, jobs, the upload folder."""

    cfg: ServeConfig
    roots: Roots
    media: MediaStore
    models: ModelHub
    jobs: JobManager
    uploads: Path
    cache: OrderedDict = field(default_factory=OrderedDict)
    cache_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def max_upload(self) -> int:
        return int(self.cfg.max_upload_mb * 1024 * 1024)


def static_dir() -> Path:
    return Path(str(resources.files("scopeseg.serve") / "static"))


def _status(e: ScopesegError) -> int:
    if isinstance(e, Forbidden):
        return 403
    if isinstance(e, NotFound):
        return 404
    if isinstance(e, TooLarge):
        return 413
    if isinstance(e, ModelError):
        return 422
    return 400


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "malformed request: " + "; ".join(parts)


def create_app(
    roots: list[str | Path],
    cfg: ServeConfig | None = None,
    models: dict[str, Any] | None = None,
    discover: bool = True,
) -> FastAPI:
    """The app over data ``roots``; ``models`` adds name -> predictor object / released name / folder.

    ``discover``: also offer installed released promptable models, ``cfg.models`` and checkpoint folders found
    under the roots.
    """
    cfg = cfg or ServeConfig()
    server = Server(
        cfg,
        Roots(roots),
        MediaStore(),
        ModelHub(cfg.engine, cfg.threads, cfg.embeddings),
        JobManager(),
        Path(tempfile.mkdtemp(prefix="scopeseg-serve-uploads-")),
    )
    for name, source in (models or {}).items():
        server.models.add(name, source)
    if discover:
        server.models.add_released()
        for m in cfg.models:
            server.models.add(Path(m).name if Path(m).exists() else m, m)
        for i, path, _ in server.roots.find(("checkpoint",), cfg.scan_depth):
            rel = path.relative_to(server.roots.paths[i]).as_posix()
            try:
                server.models.add(rel, path)
            except ScopesegError as e:
                log.warning("skipping checkpoint %s: %s", path, e)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        shutil.rmtree(server.uploads, ignore_errors=True)  # the server's own temp folder of uploads

    app = FastAPI(
        title="scopeseg",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.server = server

    @app.exception_handler(ScopesegError)
    async def _scopeseg_error(request: Request, exc: ScopesegError):
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # a bug: logged with its traceback, never shown
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({exc.__class__.__name__}); see the server log"}, 500)

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        path = request.url.path
        if cfg.token and (path.startswith("/api/") or path == "/"):
            given = (
                request.headers.get(TOKEN_HEADER)
                or request.cookies.get(TOKEN_COOKIE)
                or request.query_params.get("token")
                or ""
            )
            if not hmac.compare_digest(given.encode(), cfg.token.encode()):
                return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return JSONResponse({"error": "malformed Content-Length"}, status_code=400)
            if int(length) > server.max_upload:
                return JSONResponse(
                    {
                        "error": f"request body of {int(length)} bytes exceeds the limit of {server.max_upload}"
                    },
                    status_code=413,
                )
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if cfg.token and request.query_params.get("token") == cfg.token:
            response.set_cookie(TOKEN_COOKIE, cfg.token, httponly=True, samesite="strict")
        return response

    from .routes_browse import router as browse_router
    from .routes_segment import router as segment_router

    app.include_router(segment_router)
    app.include_router(browse_router)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", include_in_schema=False)
    def _index():
        return FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def _favicon():
        return Response(status_code=204)

    @app.get("/api/status")
    def _status_route():
        return {
            "version": __version__,
            "roots": server.roots.names(),
            "models": server.models.list(),
            "limits": {
                "max_upload_bytes": server.max_upload,
                "max_image_pixels": cfg.max_image_pixels,
                "max_frames": cfg.max_frames,
            },
        }

    return app


def new_token() -> str:
    """A random token for listening beyond localhost."""
    return secrets.token_urlsafe(24)
