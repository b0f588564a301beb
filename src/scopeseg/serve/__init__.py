"""The local web app (``scopeseg serve``): segment images and videos, browse data sets and results.

``create_app(roots, cfg)`` builds the FastAPI app; ``serve(roots, cfg)`` runs it with uvicorn on localhost.
"""

from __future__ import annotations

from pathlib import Path

from .config import ServeConfig, is_loopback

__all__ = ["ServeConfig", "create_app", "is_loopback", "serve"]


def create_app(*args, **kwargs):
    """See ``serve.app.create_app`` (imported lazily: FastAPI loads only when the app is built)."""
    from .app import create_app as _create

    return _create(*args, **kwargs)


def serve(roots: list[str | Path], cfg: ServeConfig, allow_remote: bool = False) -> None:
    """Run the app until interrupted; a non-loopback host needs ``allow_remote`` and a token."""
    import uvicorn

    cfg.check_listen(allow_remote)
    app = create_app(roots, cfg)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
