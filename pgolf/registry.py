"""A name -> object registry: components register themselves by name, callers look them up by
name, and a lookup imports the component's module (from `pgolf.components.MODULES`) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from pgolf.components import MODULES
from pgolf.config import from_dict
from pgolf.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._modules = MODULES.get(kind, {})

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            if isinstance(obj, type):
                obj.name = name  # a registered class knows its name (class attributes may set it first)
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name not in self._entries and name in self._modules:
            # Already-defined entries (e.g. in an exported single file) are used as they are.
            importlib.import_module(self._modules[name])
        try:
            return self._entries[name]
        except KeyError:
            known = self.names()
            raise ConfigError(f"unknown {self.kind} {name!r}{did_you_mean(name, known)} "
                              f"(known: {', '.join(known)})") from None

    def load(self, names: list[str] | None = None) -> "Registry[T]":
        """Import the modules of `names` (every known one when None); unknown names fail as in `get`."""
        for name in self.names() if names is None else names:
            self.get(name)
        return self

    def options(self, name: str, table: dict[str, Any] | None, where: str) -> Any:
        """`name`'s options dataclass (its `Options`) parsed from a preset table: the one parser
        every component's options go through, so unknown keys and bad types fail alike."""
        return from_dict(self.get(name).Options, table or {}, where)

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._modules))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
