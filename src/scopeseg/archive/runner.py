"""The unit-of-work runner of archive jobs: units run in this process (``local``) or on Ray workers (``ray``).

Why: an archive (thousands of videos) outgrows one process. A job kind says how one unit (a video, a shard of
images) is done by a worker that holds its engine; this module schedules the units, writes each unit's output
atomically inside the job folder, records finished units in ``manifest.json`` (a rerun skips them and retries
failed ones), retries a unit whose worker died, and reports the whole job's progress. Ray is an optional extra
(``pip install scopeseg[ray]``), imported only for ``runner=ray``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..config import BaseConfig
from ..errors import ConfigError, DataError, ScopesegError
from ..io import (
    PARTIAL,
    REPLACED,
    _umask,
    leftovers,
    link_or_copy,
    output_exists,
    read_json,
    tidy,
    write_json,
)
from ..progress import track
from ..registry import Registry

log = logging.getLogger(__name__)

Runner = Literal["local", "ray"]
MANIFEST = "manifest.json"
#: exit status of a command whose job finished with failed units (the others are written); 2 = refused
EXIT_UNITS_FAILED = 3


class RunnerConfig(BaseConfig):
    """Where a job's units run (not what they give): ``runner=local|ray address=... workers=N threads=N``."""

    runner: Runner = "local"
    address: str | None = None  # runner=ray: auto | HOST:PORT of a running cluster (None: a local one)
    workers: int | None = Field(None, ge=1)  # runner=ray: worker processes, one engine each
    threads: int | None = Field(None, ge=1)  # CPU threads per worker


@dataclass(frozen=True)
class Unit:
    """One piece of a job: ``name`` (unique; its output folder under OUT) and what the job kind needs."""

    name: str
    source: str
    data: dict[str, Any] = field(default_factory=dict)


class Job:
    """A job kind: built once per worker from the job's settings (it holds the engine), then runs units.

    ``writes``: each unit writes a folder ``OUT/<unit name>`` (``run`` gets that path and must write it
    atomically, replacing an earlier attempt); otherwise ``run`` returns its result and gets ``None``.
    """

    name: ClassVar[str] = ""
    writes: ClassVar[bool] = True

    def __init__(self, settings: dict[str, Any]):
        self.settings = settings

    def run(self, unit: Unit, out: Path | None) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError


JOBS: Registry[type[Job]] = Registry("archive job", ConfigError, packages=("scopeseg.archive",))


def register_job(name: str) -> Callable[[type[Job]], type[Job]]:
    """Register a ``Job`` subclass as job kind ``name`` (``predict``, ``evaluate``, ``track``, ...)."""

    def deco(cls: type[Job]) -> type[Job]:
        cls.name = name
        return JOBS.register(name, cls)

    return deco


@dataclass
class JobReport:
    """What a job did: units done now / earlier, failed units with their one-line errors, seconds."""

    job: str
    out: str | None
    runner: str
    workers: int
    units: int
    done_now: list[str]
    done_before: list[str]
    failed: dict[str, str]
    results: dict[str, dict[str, Any]]
    seconds: float

    @property
    def exit_code(self) -> int:
        """0 when every unit is done; ``EXIT_UNITS_FAILED`` (3) when some failed (the others are written)."""
        return EXIT_UNITS_FAILED if self.failed else 0

    def summary(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "job": self.job,
            "units": self.units,
            "done": len(self.done_now) + len(self.done_before),
            "done_now": len(self.done_now),
            "done_before": len(self.done_before),
            "failed": len(self.failed),
            "runner": f"{self.runner} ({self.workers} worker{'s' if self.workers > 1 else ''})",
            "seconds": round(self.seconds, 3),
        }
        if self.out:
            s["out"] = self.out
            s["manifest"] = str(Path(self.out) / MANIFEST)
        for name, err in self.failed.items():
            s[f"failed {name}"] = err
        return s


def settings_digest(job: str, settings: dict[str, Any]) -> str:
    """Digest of what decides a job's outputs (a rerun with another digest is another job, not a resume)."""
    text = json.dumps({"job": job, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ unit work
def _attempt(job: Job, unit: Unit, out: Path | None) -> dict[str, Any]:
    """Run one unit; a user-caused error (``ScopesegError``: a corrupt video) is a failed unit, not a crash."""
    t0 = time.perf_counter()
    try:
        result = job.run(unit, out / unit.name if out is not None else None)
    except ScopesegError as e:
        return {"ok": False, "error": str(e)}
    except Exception as e:  # a bug in one unit must not take the others down; its traceback is logged
        log.error("unit %s failed:\n%s", unit.name, traceback.format_exc())
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "result": result, "seconds": round(time.perf_counter() - t0, 3), "pid": os.getpid()}


def _local(
    job_cls: type[Job], settings: dict[str, Any], units: list[Unit], out: Path | None, **_: Any
) -> Iterator[tuple[Unit, dict[str, Any]]]:
    job = job_cls(settings)
    for unit in units:
        yield unit, _attempt(job, unit, out)


class RayMissingError(ConfigError):
    """runner=ray without the ray package installed."""


def import_ray() -> Any:
    """``ray``, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(
            "runner=ray needs Ray: pip install 'scopeseg[ray]' (or pip install 'ray[default]')"
        ) from None
    return ray


@dataclass
class _Cluster:
    """A Ray connection: a local cluster started (and stopped) by us, or an existing one (left running)."""

    ray: Any
    started: bool
    temp_dir: str | None = None

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            if self.temp_dir:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


def connect(address: str | None, cpus: int) -> _Cluster:
    """Join ``address`` (``auto`` or ``HOST:PORT``), reuse this process's connection, or start a local
    cluster with ``cpus`` CPUs whose session files live in a temp folder removed by ``close()``."""
    ray = import_ray()
    if ray.is_initialized():
        return _Cluster(ray, started=False)
    if address:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as e:
            raise ConfigError(f"address={address}: no Ray cluster there ({e})") from None
        return _Cluster(ray, started=False)
    temp_dir = tempfile.mkdtemp(prefix="scopeseg-ray-")
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=temp_dir,
    )
    return _Cluster(ray, started=True, temp_dir=temp_dir)


class _Worker:
    """A Ray actor holding one job instance (one engine), running one unit at a time."""

    def __init__(self, job_cls: type[Job], settings: dict[str, Any]):
        self.job = job_cls(settings)  # Ray sets OMP_NUM_THREADS to the actor's num_cpus (= threads)

    def run(self, unit: Unit, out: Path | None) -> dict[str, Any]:
        return _attempt(self.job, unit, out)


#: restarts of a worker whose process died, and retries of the unit it was running
MAX_RESTARTS, MAX_UNIT_RETRIES = 4, 3


def _ray(
    job_cls: type[Job],
    settings: dict[str, Any],
    units: list[Unit],
    out: Path | None,
    address: str | None = None,
    workers: int = 1,
    threads: int = 1,
) -> Iterator[tuple[Unit, dict[str, Any]]]:
    cluster = connect(address, workers * threads)
    ray = cluster.ray
    pool: list[Any] = []
    try:
        actor = ray.remote(num_cpus=threads, max_restarts=MAX_RESTARTS, max_task_retries=MAX_UNIT_RETRIES)(
            _Worker
        )
        pool += [actor.remote(job_cls, settings) for _ in range(min(workers, len(units)))]
        queue, running = list(reversed(units)), {}
        for w in pool:
            if queue:
                unit = queue.pop()
                running[w.run.remote(unit, out)] = (w, unit)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            w, unit = running.pop(ready[0])
            try:
                res = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # the worker died more often than retries allow
                res = {"ok": False, "error": f"worker lost: {str(e).splitlines()[0]}"}
            if queue:
                nxt = queue.pop()
                running[w.run.remote(nxt, out)] = (w, nxt)
            yield unit, res
    finally:
        for w in pool:  # also when the job stops early: a shared cluster keeps no idle engines of ours
            ray.kill(w)
        cluster.close()


RUNNERS: dict[str, Callable[..., Iterator[tuple[Unit, dict[str, Any]]]]] = {"local": _local, "ray": _ray}


# ------------------------------------------------------------------------------------------ job folder
def _earlier_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest a killed run left in its partial folder (newest), else the finished OUT's, else None."""
    for folder in [*leftovers(out)["partial"], out]:
        f = folder / MANIFEST
        if f.is_file():
            try:
                return read_json(f, expect=dict)
            except DataError:
                return None
    return None


@contextlib.contextmanager
def _job_folder(out: Path, resume: bool) -> Iterator[Path]:
    """``io.atomic_dir`` for a job: a hidden partial folder (the killed run's one taken over on ``resume``,
    else hard links to an earlier ``out``) renamed to ``out`` at the end. Unlike a single output, a job
    that stops early (an interrupt, an error) leaves its partial folder with the finished units for a rerun.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    adopt = tidy(out, keep_partial=resume)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{PARTIAL}-{os.getpid()}-", dir=out.parent))
    if adopt is not None:
        os.replace(adopt, tmp)  # claim it: the folder now carries this run's PID
    elif resume and out.is_dir():
        shutil.copytree(out, tmp, copy_function=link_or_copy, dirs_exist_ok=True)
    try:
        yield tmp
    except BaseException:
        done = (tmp / MANIFEST).is_file() and read_json(tmp / MANIFEST, expect=dict).get("units")
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log.warning("job stopped; finished units kept in %s: rerun the same command to resume", tmp)
        raise
    os.chmod(tmp, 0o777 & ~_umask())
    if out.exists():
        old = out.with_name(f".{out.name}.{REPLACED}-{os.getpid()}-{os.urandom(4).hex()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def run_job(
    job: str,
    settings: dict[str, Any],
    units: list[Unit],
    out: str | Path | None = None,
    runner: Runner = "local",
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    overwrite: bool = False,
    worker_settings: dict[str, Any] | None = None,
) -> JobReport:
    """Run ``units`` of job kind ``job`` under ``settings`` and return what was done.

    ``settings`` decide the outputs (their digest tells a resume from another job); ``worker_settings``
    (threads, ...) reach the workers too but may change between runs.

    With ``out``: unit outputs and ``manifest.json`` go into a hidden partial folder beside ``out`` that is
    renamed to ``out`` at the end (``io.atomic_dir``). A rerun with the same settings resumes: the partial
    folder a killed run left (or the earlier ``out``) is taken over, units it records as done are skipped,
    failed ones run again. An ``out`` from other settings is refused unless ``overwrite``.
    """
    job_cls = JOBS.get(job)
    if runner not in RUNNERS:
        raise ConfigError(f"runner={runner!r}: choose local or ray")
    if runner == "local" and (workers or 1) > 1:
        raise ConfigError("runner=local runs one unit at a time; use runner=ray for workers > 1")
    if runner == "local" and address:
        raise ConfigError("address= needs runner=ray")
    if runner == "ray":
        import_ray()  # a missing extra is refused before any work
    names = [u.name for u in units]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"units with the same name {dup[:3]}: their outputs would collide")
    digest = settings_digest(job, settings)
    t0 = time.perf_counter()
    run_settings = {**settings, **(worker_settings or {})}
    kw = {"address": address, "workers": workers or 1, "threads": threads or 1}
    if out is None:
        report = JobReport(job, None, runner, kw["workers"], len(units), [], [], {}, {}, 0.0)
        _collect(RUNNERS[runner](job_cls, run_settings, units, None, **kw), report, len(units))
        report.seconds = time.perf_counter() - t0
        return report
    out = Path(out)
    earlier = _earlier_manifest(out)
    resume = earlier is not None and earlier.get("digest") == digest
    if not resume and output_exists(out) and not overwrite:
        what = "a job with other settings" if earlier else "other files"
        raise DataError(f"output already holds {what} (pass --overwrite to replace it)", out)
    manifest: dict[str, Any] = {"job": job, "digest": digest, "settings": settings, "units": {}}
    if resume:
        manifest["units"] = {
            k: v for k, v in earlier.get("units", {}).items() if v.get("status") == "done" and k in names
        }
    with _job_folder(out, resume) as tmp:
        done = manifest["units"]
        todo = [u for u in units if u.name not in done or (job_cls.writes and not (tmp / u.name).exists())]
        before = [u.name for u in units if u not in todo]
        results = {n: done[n].get("result") or {} for n in before}
        report = JobReport(job, str(out), runner, kw["workers"], len(units), [], before, {}, results, 0.0)
        manifest["complete"] = False
        write_json(tmp / MANIFEST, manifest, indent=1)

        def record(unit: Unit, res: dict[str, Any]) -> None:
            entry = {"status": "done", "seconds": res.get("seconds"), "pid": res.get("pid")}
            entry["result"] = res.get("result")
            if not res["ok"]:
                entry = {"status": "failed", "error": res["error"]}
            manifest["units"][unit.name] = entry
            write_json(tmp / MANIFEST, manifest, indent=1)

        if todo:
            _collect(RUNNERS[runner](job_cls, run_settings, todo, tmp, **kw), report, len(todo), record)
        manifest["complete"] = not report.failed
        write_json(tmp / MANIFEST, manifest, indent=1)
    report.seconds = time.perf_counter() - t0
    return report


def _collect(
    results: Iterator[tuple[Unit, dict[str, Any]]],
    report: JobReport,
    total: int,
    record: Callable[[Unit, dict[str, Any]], None] | None = None,
) -> None:
    """Drain finished units into ``report`` (and the manifest) with a whole-job progress bar."""
    for unit, res in track(results, f"{report.job}: units", total=total):
        if record is not None:
            record(unit, res)
        if res["ok"]:
            report.done_now.append(unit.name)
            report.results[unit.name] = res["result"]
        else:
            report.failed[unit.name] = res["error"]
            log.warning("unit %s failed: %s", unit.name, res["error"])


__all__ = [
    "EXIT_UNITS_FAILED",
    "JOBS",
    "Job",
    "JobReport",
    "RunnerConfig",
    "Unit",
    "connect",
    "import_ray",
    "register_job",
    "run_job",
]
