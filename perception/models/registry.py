"""A tiny name -> builder registry; registering a name twice is an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to builder callables; lookups of unknown names list the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._builders: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``builder`` under ``name``; a duplicate name raises ``KeyError``."""

        def decorator(builder: Callable[..., T]) -> Callable[..., T]:
            self.add(name, builder)
            return builder

        return decorator

    def add(self, name: str, builder: Callable[..., T]) -> None:
        """Register ``builder`` under ``name``; a duplicate name raises ``KeyError``."""
        if name in self._builders:
            raise KeyError(f"{self.kind} registry: name {name!r} is already registered")
        self._builders[name] = builder

    def get(self, name: str) -> Callable[..., T]:
        """The builder registered as ``name``; unknown names raise ``KeyError`` listing the known ones."""
        try:
            return self._builders[name]
        except KeyError:
            raise KeyError(f"{self.kind} registry: unknown name {name!r}; known: {sorted(self._builders)}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._builders)

    def __contains__(self, name: object) -> bool:
        return name in self._builders
