"""Migrations between schema versions, registered per (type, from, to), applied along the shortest path.

Registries are graphs, not chains: teams add a v3→v2 downgrade or a v1→v3 shortcut, and cycles are
normal. Breadth-first search gives the fewest steps; ties go to the neighbour that sorts first in
natural version order, so the same registry always takes the same path. Each step works on a copy,
and a step that does not set ``_schema_version`` gets it set to the step's target. Checking the
result against the target schema is the caller's job (it owns the registry and the reject reason).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from attrs import frozen

from domain.json_types import JsonObject
from domain.schema_registry import version_key

MigrationFn = Callable[[JsonObject], JsonObject]


def _copy(value: Any) -> Any:
    """Deep copy of a JSON-form value: containers are copied, immutable scalars shared (several times
    faster than ``copy.deepcopy``, which also memoizes). A flat document, the common case, is one C-level
    ``dict`` copy after a C-level scan of its value types."""
    kind = type(value)
    if kind is dict:
        out = dict(value)
        if not _CONTAINERS.isdisjoint(map(type, out.values())):
            for key, item in value.items():
                if type(item) in _CONTAINERS:
                    out[key] = _copy(item)
        return out
    if kind is list:
        return [_copy(item) if type(item) in _CONTAINERS else item for item in value]
    return value


_CONTAINERS = frozenset((dict, list))


class MigrationError(Exception):
    """Base of the migration failures; each subclass maps to its own reject reason."""


class MigrationPathMissing(MigrationError):
    """No chain of registered migrations leads from the source version to the target."""


class MigrationFailed(MigrationError):
    """A migration function raised (the original exception is the ``__cause__``) or returned a non-dict."""


@frozen
class MigrationResult:
    """The migrated document and the versions it went through, source first."""

    document: JsonObject
    path: tuple[str, ...]


@frozen
class MigrationPlan:
    """The resolved steps from one version to another: what ``migrate`` applies to each document.

    Resolved once per (type, from, to) and cached by the migrator until the next registration, so the
    hot path pays neither the path search nor the edge look-ups per document.
    """

    document_type: str
    path: tuple[str, ...]
    steps: tuple[tuple[str, str, MigrationFn], ...]

    def apply(self, document: JsonObject) -> JsonObject:
        """Each step on a copy of ``document`` (which is never mutated); returns the migrated document."""
        current: JsonObject = _copy(document)
        for source, target, fn in self.steps:
            try:
                result = fn(current)
            except Exception as error:
                raise MigrationFailed(
                    f"migration {self.document_type} {source}->{target} raised {type(error).__name__}: {error}"
                ) from error
            if not isinstance(result, dict):
                raise MigrationFailed(
                    f"migration {self.document_type} {source}->{target} returned {type(result).__name__}, "
                    "not a document"
                )
            version = result.get("_schema_version")
            if version is None or version == source:
                result = {**result, "_schema_version": target}
            current = result
        return current


class _Register(Protocol):
    def __call__(self, document_type: str, from_version: str, to_version: str, fn: MigrationFn) -> None: ...


class _DefaultOrInstance:
    """Makes ``register_migration`` work on the class and on an instance.

    On the class it fills the process-wide default migrator (the seed's spelling,
    ``SchemaMigrator.register_migration(DocumentType.INVENTORY, "v1", "v2", fn)``); on an instance,
    that instance. A classmethod cannot do both.
    """

    def __get__(self, instance: SchemaMigrator | None, owner: type[SchemaMigrator]) -> _Register:
        return (owner.default() if instance is None else instance)._register


class SchemaMigrator:
    """A registry of migration functions with shortest-path migration.

    Registering an edge that already exists replaces its function (last registration wins), so a
    user directory can override a built-in migration.
    """

    _default: SchemaMigrator | None = None
    register_migration = _DefaultOrInstance()

    def __init__(self) -> None:
        self._edges: dict[str, dict[str, dict[str, MigrationFn]]] = {}
        self._paths: dict[tuple[str, str, str], tuple[str, ...] | None] = {}
        self._plans: dict[tuple[str, str, str], MigrationPlan] = {}

    @classmethod
    def default(cls) -> SchemaMigrator:
        """The process-wide migrator that class-level ``register_migration`` calls fill."""
        if cls._default is None:
            cls._default = SchemaMigrator()
        return cls._default

    def _register(self, document_type: str, from_version: str, to_version: str, fn: MigrationFn) -> None:
        self._edges.setdefault(str(document_type), {}).setdefault(from_version, {})[to_version] = fn
        self._paths.clear()
        self._plans.clear()

    def migration(self, document_type: str, from_version: str, to_version: str) -> Callable[[MigrationFn], MigrationFn]:
        """Decorator form of ``register_migration``; returns the function unchanged."""

        def decorate(fn: MigrationFn) -> MigrationFn:
            self._register(document_type, from_version, to_version, fn)
            return fn

        return decorate

    def include(self, other: SchemaMigrator) -> None:
        """Add every edge of ``other``; where both have an edge, ``other``'s wins."""
        for document_type, source, target in other.edges():
            self._register(document_type, source, target, other._edges[document_type][source][target])

    def merged(self, *others: SchemaMigrator) -> SchemaMigrator:
        """A new migrator with this one's edges, then each of ``others``'s (later ones win)."""
        result = SchemaMigrator()
        for migrator in (self, *others):
            result.include(migrator)
        return result

    def edges(self) -> list[tuple[str, str, str]]:
        """Every registered (type, from, to)."""
        return [(t, s, d) for t, sources in self._edges.items() for s, targets in sources.items() for d in targets]

    def find_path(self, *, document_type: str, from_version: str, to_version: str) -> tuple[str, ...]:
        """The fewest-steps chain of versions from ``from_version`` to ``to_version``, both included."""
        key = (str(document_type), from_version, to_version)
        if key not in self._paths:
            self._paths[key] = self._search(*key)
        path = self._paths[key]
        if path is None:
            raise MigrationPathMissing(
                f"no registered migration path for {document_type} from {from_version} to {to_version}; "
                f"register one (e.g. {from_version}->{to_version}) in {document_type}/migrations.py"
            )
        return path

    def _search(self, document_type: str, source: str, target: str) -> tuple[str, ...] | None:
        if source == target:
            return (source,)
        graph = self._edges.get(document_type, {})
        previous: dict[str, str] = {source: source}
        queue = deque([source])
        while queue:
            current = queue.popleft()
            for neighbour in sorted(graph.get(current, {}), key=version_key):
                if neighbour in previous:
                    continue
                previous[neighbour] = current
                if neighbour == target:
                    path = [target]
                    while path[-1] != source:
                        path.append(previous[path[-1]])
                    return tuple(reversed(path))
                queue.append(neighbour)
        return None

    def plan(self, *, document_type: str, from_version: str, to_version: str) -> MigrationPlan:
        """The steps of the shortest path, resolved once (cached until the next registration)."""
        key = (document_type, from_version, to_version)
        plan = self._plans.get(key)
        if plan is None:
            path = self.find_path(document_type=document_type, from_version=from_version, to_version=to_version)
            edges = self._edges.get(str(document_type), {})
            steps = tuple((source, target, edges[source][target]) for source, target in itertools.pairwise(path))
            plan = self._plans[key] = MigrationPlan(document_type=str(document_type), path=path, steps=steps)
        return plan

    def migrate(
        self, *, document_type: str, document: JsonObject, from_version: str, to_version: str
    ) -> MigrationResult:
        """Apply each step of the shortest path to a copy of ``document`` (which is never mutated)."""
        plan = self.plan(document_type=document_type, from_version=from_version, to_version=to_version)
        return MigrationResult(document=plan.apply(document), path=plan.path)
