"""One registry pattern for models and backends: a decorator that refuses
duplicates and a lookup that names the choices when asked for an unknown one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from tfkt_edge.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry mapping filled by ``@registry.register("name")``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
