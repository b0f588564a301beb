"""Progress bars for long work (rich), switched off by ``-q`` or when output is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_state = {"enabled": True}


def set_enabled(enabled: bool) -> None:
    _state["enabled"] = enabled


def enabled() -> bool:
    return _state["enabled"] and sys.stderr.isatty()


def track(
    items: Iterable[T], description: str = "", total: int | None = None, rate: str | None = None
) -> Iterator[T]:
    """Iterate with a progress bar on stderr when enabled; plain iteration otherwise.

    ``rate`` (a unit such as ``frames``) adds the live speed (``12.3 frames/s``), e.g. for a stream.
    """
    if not enabled():
        yield from items
        return
    if rate is not None:
        yield from _track_rate(items, description, total, rate)
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(
        items, description=description, total=total, console=Console(stderr=True), transient=False
    )


def _track_rate(items: Iterable[T], description: str, total: int | None, unit: str) -> Iterator[T]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    speed = TextColumn("{task.fields[speed]}")
    cols = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), speed]
    with Progress(*cols, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total, speed="")
        for x in items:
            yield x
            bar.update(task, advance=1)
            s = bar.tasks[0].speed
            bar.update(task, speed=f"{s:.1f} {unit}/s" if s else "")
