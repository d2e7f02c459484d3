"""Immutable maps and sets whose next version costs its changes, not its size.

The live state hands the REST reads a new snapshot after every run (`streaming/state/workflows.py`);
copying its maps each time (every live event's workflow, every live workflow's row) made a run cost
the whole live window: at 1,000 new workflows a second the copies, comparisons and the old copies'
deallocation grew to most of the worker's time, with the GIL held. A `Layered` map is a stack of
frozen dicts, newest first: `updated(changes)` puts the changes on top and merges a layer into the
one below once it is at least half its size (as a binary counter carries), so each key is copied
O(log n) times over its life and a lookup reads at most ~log2(n) small dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Set
from typing import Any


class _Gone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "GONE"


GONE: Any = _Gone()  # a change that removes the key


class Layered(Mapping):
    """A frozen mapping; `updated()` returns a new one and leaves this one as it was."""

    __slots__ = ("_layers", "_len")

    def __init__(self, items: Mapping | None = None) -> None:
        base = dict(items or {})
        self._layers: tuple[dict, ...] = (base,) if base else ()
        self._len = len(base)

    @classmethod
    def _of(cls, layers: tuple[dict, ...], length: int) -> Layered:
        new = cls.__new__(cls)
        new._layers, new._len = layers, length
        return new

    def updated(self, changes: Mapping) -> Layered:
        """This map with `changes` applied (a value of `GONE` removes its key)."""
        if not changes:
            return self
        length = self._len
        top: dict = {}
        for key, value in changes.items():
            had = key in self
            if value is GONE:
                if not had:
                    continue
                length -= 1
            elif not had:
                length += 1
            top[key] = value
        if not top:
            return self
        layers = [top, *self._layers]
        # Carry: merge the top into the next while it is at least half that one's size.
        while len(layers) > 1 and 2 * len(layers[0]) >= len(layers[1]):
            merged = {**layers[1], **layers[0]}
            if len(layers) == 2:  # the bottom: removals have nothing left to hide
                merged = {k: v for k, v in merged.items() if v is not GONE}
            layers[:2] = [merged]
        return Layered._of(tuple(layers), length)

    def __getitem__(self, key: Any) -> Any:
        for layer in self._layers:
            if key in layer:
                value = layer[key]
                if value is GONE:
                    raise KeyError(key)
                return value
        raise KeyError(key)

    def get(self, key: Any, default: Any = None) -> Any:
        for layer in self._layers:
            value = layer.get(key, GONE)
            if value is not GONE:
                return value
            if key in layer:
                return default
        return default

    def __contains__(self, key: object) -> bool:
        for layer in self._layers:
            if key in layer:
                return layer[key] is not GONE
        return False

    def __iter__(self) -> Iterator:
        if len(self._layers) == 1:
            yield from self._layers[0]
            return
        seen: set = set()
        for layer in self._layers:
            for key, value in layer.items():
                if key not in seen:
                    seen.add(key)
                    if value is not GONE:
                        yield key

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"Layered({dict(self)!r})"


class LayeredSet(Set):
    """A frozen set with the same cheap `updated(added, removed)`."""

    __slots__ = ("_map",)

    def __init__(self, items: Iterable = ()) -> None:
        self._map = Layered(dict.fromkeys(items, True))

    def updated(self, added: Iterable = (), removed: Iterable = ()) -> LayeredSet:
        changes = dict.fromkeys(removed, GONE)
        changes.update(dict.fromkeys(added, True))
        new = LayeredSet.__new__(LayeredSet)
        new._map = self._map.updated(changes)
        return new

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def __iter__(self) -> Iterator:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __repr__(self) -> str:
        return f"LayeredSet({set(self)!r})"

    __hash__ = Set._hash


__all__ = ["GONE", "Layered", "LayeredSet"]
