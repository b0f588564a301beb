"""Named registries that find their entries: built-in packages are walked, plugins come from entry points.

A family registers where it is defined (``@register_model``, ``@register_task``, ...); a registry imports the
modules that may hold registrations the first time a name is missing or a listing is asked for, so nothing
lists the families by hand. Out-of-tree families are Python packages that declare an entry point in the
``scopeseg.plugins`` group naming a module; importing that module registers its models, tasks and presets.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import ScopesegError

T = TypeVar("T")

#: entry-point group of out-of-tree families: ``name = package.module`` (the module registers on import)
PLUGIN_GROUP = "scopeseg.plugins"

_searched: set[str] = set()  # packages (and the plugin group) already imported in this process


class PluginError(ScopesegError):
    """An installed plugin cannot be imported (a dependency of it is missing)."""


def import_tree(package: str) -> None:
    """Import ``package`` and every module below it once; private (``_x``) and ``__main__`` modules are skipped.

    Import errors propagate: a built-in module that cannot be imported is a bug, never silently skipped.
    """
    if package in _searched:
        return
    _searched.add(package)
    try:
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(getattr(root, "__path__", []), prefix=package + "."):
            if not info.name.rpartition(".")[2].startswith("_"):
                if info.ispkg:
                    import_tree(info.name)
                else:
                    importlib.import_module(info.name)
    except BaseException:
        _searched.discard(package)  # a later search tries again (and fails loudly again)
        raise


def load_plugins() -> list[str]:
    """Import the module of every ``scopeseg.plugins`` entry point once; returns the entry-point names."""
    eps = sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)
    if PLUGIN_GROUP in _searched:
        return [ep.name for ep in eps]
    _searched.add(PLUGIN_GROUP)
    try:
        for ep in eps:
            try:
                importlib.import_module(ep.module)
            except ImportError as e:
                raise PluginError(
                    f"plugin {ep.name!r} (entry point {PLUGIN_GROUP}: {ep.value}) cannot be imported: {e}"
                ) from e
    except BaseException:
        _searched.discard(PLUGIN_GROUP)
        raise
    return [ep.name for ep in eps]


class Registry(Generic[T]):
    """Name -> item, filled by decorators in the modules that define the items.

    ``packages`` are the built-in package trees searched (with the installed plugins) the first time a name
    is missing or a listing is asked for; ``error`` is the ``ScopesegError`` raised for an unknown name.
    """

    def __init__(self, kind: str, error: type[ScopesegError] = ScopesegError, packages: Sequence[str] = ()):
        self.kind = kind
        self.error = error
        self.packages = tuple(packages)
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str, item: T, origin: str | None = None) -> T:
        """Add ``item`` under ``name``; the same name from another place is refused (two families clash).

        ``origin`` (default: the item's module and qualified name) lets a module re-import re-register.
        """
        origin = origin or f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', repr(item))}"
        if name in self._items and self._origins[name] != origin:
            raise self.error(
                f"{self.kind} {name!r} is registered twice: by {self._origins[name]} and by {origin}"
            )
        self._items[name] = item
        self._origins[name] = origin
        return item

    def discover(self) -> None:
        """Import the built-in packages and the installed plugins (each once per process)."""
        for package in self.packages:
            import_tree(package)
        load_plugins()

    def get(self, name: str) -> T:
        """The item registered as ``name``; an unknown name raises ``error`` with close matches."""
        if name not in self._items:
            self.discover()
        if name not in self._items:
            close = difflib.get_close_matches(str(name), list(self._items), n=3)
            hint = (
                f"did you mean {', '.join(close)}?" if close else f"{self.kind}s: {', '.join(self.names())}"
            )
            raise self.error(f"unknown {self.kind} {name!r}; {hint}")
        return self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a glob, after discovery (``names("unet-*")``)."""
        self.discover()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, item) pairs in name order, after discovery."""
        return ((n, self._items[n]) for n in self.names())

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self.discover()
        return name in self._items
