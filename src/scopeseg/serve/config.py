"""Settings of ``scopeseg serve``: data roots, address, the token for non-local listening, limits, models."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field

from ..config import BaseConfig
from ..errors import ConfigError

#: hosts that only this machine can reach: listening there needs no token
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for ``127.x.x.x``, ``::1`` and ``localhost``."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServeConfig(BaseConfig):
    """``scopeseg serve [DATA_ROOT ...] key=value``: what the local web app may read and how it listens."""

    host: str = "127.0.0.1"  # localhost by default; any other address needs --allow-remote and a token
    port: int = Field(8765, ge=0, le=65535)
    token: str | None = (
        None  # required on every request when set (header X-Scopeseg-Token, cookie or ?token=)
    )
    #: extra promptable / semantic / instance models: released names or checkpoint folders (under the roots
    #: or given here by the person starting the server)
    models: list[str] = Field(default_factory=list)
    engine: Literal["torch", "onnx", "openvino", "auto"] = "torch"  # inference engine of the models
    threads: int | None = Field(None, ge=1)
    max_upload_mb: float = Field(200.0, gt=0)  # uploads above this are refused (413)
    max_image_pixels: int = Field(40_000_000, ge=1)  # images (and video frames) above this are refused
    max_frames: int = Field(600, ge=1)  # frames of a video held for interactive work
    embeddings: int = Field(24, ge=1)  # image embeddings kept (LRU), per model
    scan_depth: int = Field(4, ge=1, le=12)  # how deep data sets / results are looked for under each root

    def check_listen(self, allow_remote: bool) -> None:
        """Refuse a non-loopback address unless ``allow_remote`` and a token are both given."""
        if is_loopback(self.host):
            return
        if not allow_remote:
            raise ConfigError(
                f"host={self.host} listens beyond this machine: pass --allow-remote and token=SECRET to do that"
            )
        if not self.token or len(self.token) < 16:
            raise ConfigError("listening beyond this machine needs token= of at least 16 characters")
