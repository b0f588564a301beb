"""Background jobs (propagation, predicting a folder, evaluation) with progress and cancel, held server-side.

Why server-side: a page reload (or a second tab) lists the same jobs with their progress; a job is never tied
to the page that started it. Each job runs in its own thread and checks ``cancelled`` between steps.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ScopesegError
from .files import NotFound

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a job when its cancel was asked; the job ends as ``cancelled``."""


@dataclass
class Job:
    """One background job: state, progress (done of total), a message, its result or error."""

    id: str
    kind: str
    title: str
    status: str = "queued"  # queued | running | done | failed | cancelled
    done: int = 0
    total: int = 0
    message: str = ""
    result: dict = field(default_factory=dict)
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def progress(self, done: int, total: int | None = None, message: str | None = None) -> None:
        """Record progress; raises ``Cancelled`` when the job was asked to stop."""
        if self.cancel_event.is_set():
            raise Cancelled()
        self.done = int(done)
        if total is not None:
            self.total = int(total)
        if message is not None:
            self.message = message

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def public(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "status": self.status,
            "done": self.done,
            "total": self.total,
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }


class JobManager:
    """Starts jobs in threads and keeps the last ``keep`` of them."""

    def __init__(self, keep: int = 50):
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, kind: str, title: str, work: Callable[[Job], dict | None]) -> Job:
        job = Job(uuid.uuid4().hex[:12], kind, title)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep:
                old = next(iter(self._jobs))
                if self._jobs[old].status in ("queued", "running"):
                    break
                self._jobs.pop(old)
        threading.Thread(target=self._run, args=(job, work), daemon=True, name=f"job-{job.id}").start()
        return job

    def _run(self, job: Job, work: Callable[[Job], dict | None]) -> None:
        job.status = "running"
        try:
            job.result = work(job) or {}
            job.status = "cancelled" if job.cancelled else "done"
        except Cancelled:
            job.status = "cancelled"
        except ScopesegError as e:
            job.status, job.error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - a bug: logged with its traceback, the job reports it failed
            log.exception("job %s (%s) failed", job.id, job.kind)
            job.status, job.error = "failed", f"internal error ({e.__class__.__name__}); see the server log"
        finally:
            job.finished = time.time()

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(str(job_id))
        if job is None:
            raise NotFound(f"no job {job_id!r}")
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.status in ("queued", "running"):
            job.cancel_event.set()
            job.message = "cancelling"
        return job

    def list(self) -> list[dict]:
        with self._lock:
            return [j.public() for j in reversed(self._jobs.values())]

    def wait(self, job_id: str, timeout: float = 60.0) -> Job:
        """Block until the job ends (tests, scripts)."""
        job = self.get(job_id)
        end = time.time() + timeout
        while job.status in ("queued", "running") and time.time() < end:
            time.sleep(0.02)
        return job
