"""Exported graphs behind one call: feeds by input name -> outputs in order, for ONNX Runtime, OpenVINO and TorchScript.

Why one module: the export checks and the engines run the same files the same way, so what an export check
passed is what an engine serves. ``open_graph(backend, path, precision, threads)``; OpenVINO compiles ``.onnx``
and ``.xml`` files alike and keeps compiled blobs in ``SCOPESEG_HOME/openvino-cache`` (``ov_cache_dir``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelError
from ..runtime import native_bf16, ort_session, ov_compile

#: a compiled graph: ``{input name: array}`` in the graph's input order -> outputs in its output order
Graph = Callable[[dict[str, np.ndarray]], list[np.ndarray]]


def ov_cache_dir() -> Path:
    """Where OpenVINO keeps compiled models: ``SCOPESEG_HOME/openvino-cache``."""
    from ..models.weights import scopeseg_home

    return scopeseg_home() / "openvino-cache"


def check_bf16_cpu(engine: str) -> None:
    """A one-line ``ModelError`` when this CPU has no native bf16 (avx512_bf16 / amx_bf16)."""
    if not native_bf16():
        raise ModelError(
            f"{engine} bf16 needs a CPU with avx512_bf16 or amx_bf16 (this one has neither); use precision=fp32"
        )


def _ort_graph(path: Path, precision: str, threads: int | None) -> Graph:
    session = ort_session(path, threads)

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(None, feeds)

    return run


def _ov_graph(path: Path, precision: str, threads: int | None) -> Graph:
    if precision == "bf16":
        check_bf16_cpu("openvino")
    compiled = ov_compile(path, "bf16" if precision == "bf16" else "fp32", threads, ov_cache_dir())
    outputs = list(compiled.outputs)
    request = compiled.create_infer_request()

    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        request.infer(feeds)
        return [request.get_tensor(o).data.copy() for o in outputs]  # the request reuses its buffers

    return run


def _torchscript_graph(path: Path, precision: str, threads: int | None) -> Graph:
    from ..runtime import configure_torch

    configure_torch(threads)
    module = torch.jit.load(str(path), map_location="cpu").eval()

    @torch.inference_mode()
    def run(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:  # traced graphs take the feeds by position
        out = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
        return [t.float().numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))]

    return run


#: backend -> ``opener(path, precision, threads) -> Graph``
BACKENDS: dict[str, Callable[[Path, str, int | None], Graph]] = {
    "onnx": _ort_graph,
    "openvino": _ov_graph,
    "torchscript": _torchscript_graph,
}


def open_graph(backend: str, path: str | Path, precision: str = "fp32", threads: int | None = None) -> Graph:
    """The graph of file ``path`` run by ``backend`` (``onnx`` = ONNX Runtime, ``openvino``, ``torchscript``).

    ``precision`` is the compute precision where the backend has a choice (OpenVINO: fp32 is set explicitly,
    bf16 only on CPUs with native bf16); quantised files carry their own precision.
    """
    return BACKENDS[backend](Path(path), precision, threads)


def as_numpy(value: Any) -> np.ndarray:
    """A torch tensor or array-like as a float32 numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().numpy()
    return np.asarray(value, np.float32)
