"""Observers of a stack's hidden states, for analysis tools (CKA, probes, signal norms).

A stack calls ``_emit`` after each layer application only when someone listens, so
models pay nothing for the hook in training.
"""

from __future__ import annotations

from typing import Callable, Hashable

from torch import Tensor

Observer = Callable[[Hashable, Tensor], None]


class Observable:
    """Mixin for stacks: ``add_observer``, ``_emit`` and ``_apply_once``. Call ``_init_observers`` in ``__init__``."""

    def _init_observers(self) -> None:
        self._observers: dict[int, Observer] = {}

    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(key, hidden)`` after every layer application; returns a remover."""
        handle = id(fn)
        self._observers[handle] = fn
        return lambda: self._observers.pop(handle, None)

    def _apply_once(self, part: str, h: Tensor, shared) -> Tensor:
        """The stack's unshared ``prelude`` or ``coda`` layers, each applied once and
        observed as ``(part, j)``: the same around every looped core."""
        for j, layer in enumerate(getattr(self, part)):
            h = layer(h, None, shared, (part, j))
            if self._observers:
                self._emit((part, j), h)
        return h

    def _emit(self, key: Hashable, h: Tensor) -> None:
        for fn in list(self._observers.values()):
            fn(key, h)
