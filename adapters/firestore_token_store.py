"""The TokenStore port on Firestore: one document per stream, every write in a transaction.

Document ``<collection>/<stream_id>``: ``token`` (``_data`` and ``_typeBits`` as bytes, so pymongo can
resume with the exact ``_id``), ``cluster_time`` ``{t, i}``, ``updated_at``, ``owner``,
``lease_expires_at`` and ``generation``. A save reads the document in the same transaction and
refuses a generation older than the lease's (a fenced-out instance) or a token older than the
stored one, so two instances can never move a checkpoint backwards, even racing.

Every RPC has a deadline (``timeout_s``, config ``token_store.timeout_s``): the client's own defaults
retry an unreachable server for 60 s (300 s for reads and queries), which hung ``admin tokens list``
and a stopping worker. A failure names the server and the fix.
"""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import gapic_v1
from google.cloud import firestore

from application.ports import Checkpoint, InstanceBeat, Lease, LeaseLost, PlanStart, StaleCheckpoint, TokenStoreError
from domain.change_event import ClusterTime, ResumeToken

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted,
              gexc.TooManyRequests, gexc.Unknown, gexc.RetryError)  # fmt: skip


def _token_fields(token: ResumeToken) -> dict[str, Any]:
    fields: dict[str, Any] = {"_data": token.data}
    if token.type_bits is not None:
        fields["_typeBits"] = base64.b64decode(token.type_bits)
    return fields


def _checkpoint_of(data: dict[str, Any]) -> Checkpoint | None:
    token = data.get("token")
    cluster = data.get("cluster_time")
    resume: ResumeToken | None = None
    if isinstance(token, dict) and "_data" in token:
        bits = token.get("_typeBits")
        resume = ResumeToken(
            data=token["_data"], type_bits=base64.b64encode(bits).decode() if isinstance(bits, bytes) else None
        )
    elif not isinstance(cluster, dict):
        return None
    return Checkpoint(
        token=resume,
        cluster_time=ClusterTime(seconds=cluster["t"], increment=cluster["i"]) if isinstance(cluster, dict) else None,
        updated_at=data.get("updated_at"),
        owner=data.get("owner"),
        generation=int(data.get("generation") or 0),
    )


def _position_fields(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "token": firestore.DELETE_FIELD if checkpoint.token is None else _token_fields(checkpoint.token),
        "cluster_time": firestore.DELETE_FIELD
        if checkpoint.cluster_time is None
        else {"t": checkpoint.cluster_time.seconds, "i": checkpoint.cluster_time.increment},
        "updated_at": checkpoint.updated_at or datetime.now(UTC),
    }


def _bound_every_call(client: Any, seconds: float) -> None:
    """Give every RPC of ``client`` a deadline of ``seconds``, retries included.

    Reads and queries take ``retry``/``timeout`` arguments, but the transaction's own begin, commit and
    rollback do not (``firestore.transactional`` calls them with the defaults). The defaults live in the
    GAPIC transport's table of wrapped methods, so the deadline is set there, once, for all of them;
    each method keeps its own retry predicate. ``test_firestore_deadlines`` holds this to a frozen
    emulator, so a client release that moves the table fails a test instead of hanging again.
    """
    transport = client._firestore_api._transport
    for method, wrapped in list(transport._wrapped_methods.items()):
        transport._wrapped_methods[method] = _with_deadline(wrapped, seconds)


def _with_deadline(wrapped: Any, seconds: float) -> Any:
    default_retry = getattr(wrapped, "_retry", None)
    retry = default_retry.with_timeout(seconds) if default_retry is not None else None

    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("retry", gapic_v1.method.DEFAULT) is gapic_v1.method.DEFAULT:
            kwargs["retry"] = retry
        if kwargs.get("timeout", gapic_v1.method.DEFAULT) in (gapic_v1.method.DEFAULT, None):
            kwargs["timeout"] = seconds
        return wrapped(*args, **kwargs)

    return call


class FirestoreTokenStore:
    """Implements the TokenStore port. The client finds the emulator through FIRESTORE_EMULATOR_HOST."""

    def __init__(
        self,
        *,
        project_id: str,
        collection: str = "connector_resume_tokens",
        client: Any = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = client or firestore.Client(project=project_id)
        _bound_every_call(self._client, timeout_s)
        self._collection = self._client.collection(collection)
        self._timeout_s = timeout_s
        emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
        if emulator:
            self._where = f"the Firestore emulator at {emulator} (FIRESTORE_EMULATOR_HOST)"
            self._fix = "start the emulator there, or unset FIRESTORE_EMULATOR_HOST to use Firestore"
        else:
            self._where = f"Firestore (firestore.googleapis.com, project {self._client.project})"
            self._fix = (
                "check network access, that the database exists (gcloud firestore databases create) and that "
                "the credentials have roles/datastore.user"
            )

    def _unavailable(self, error: BaseException) -> TokenStoreError:
        """One line: which server, what happened, what to do."""
        cause = getattr(error, "cause", None) or error  # a RetryError wraps the last attempt's error
        detail = " ".join(str(cause).split())[:200]
        if isinstance(error, _TRANSIENT):
            what = f"did not answer within {self._timeout_s:g} s (token_store.timeout_s)"
        else:
            what = "failed"
        return TokenStoreError(f"{self._where} {what}: {type(cause).__name__}: {detail}; {self._fix}")

    def _ref(self, stream_id: str) -> Any:
        return self._collection.document(stream_id)

    def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return firestore.transactional(fn)(self._client.transaction(), *args)
        except (StaleCheckpoint, LeaseLost):
            raise
        except (ValueError, gexc.GoogleAPIError, OSError) as error:
            # A hung server surfaces as a deadline inside the transaction, and the client then fails to
            # roll back with a ValueError ("no transaction ID"): still an outage, so still retryable.
            cause = error.__context__ if isinstance(error, ValueError) and error.__context__ else error
            raise self._unavailable(cause) from error

    def load(self, stream_id: str) -> Checkpoint | None:
        try:
            snapshot = self._ref(stream_id).get()
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error
        return _checkpoint_of(snapshot.to_dict() or {}) if snapshot.exists else None

    def save(self, stream_id: str, checkpoint: Checkpoint, *, generation: int) -> None:
        ref = self._ref(stream_id)

        def write(transaction: Any) -> None:
            snapshot = ref.get(transaction=transaction)
            data = snapshot.to_dict() or {} if snapshot.exists else {}
            stored_generation = int(data.get("generation") or 0)
            if generation < stored_generation:
                raise StaleCheckpoint(
                    f"generation {generation} is older than the lease's {stored_generation} (fenced out)"
                )
            stored = _checkpoint_of(data)
            newer = stored is not None and stored.token is not None and checkpoint.token is not None
            if newer and checkpoint.token.data < stored.token.data:  # type: ignore[union-attr]
                raise StaleCheckpoint("the token is older than the stored one")
            transaction.set(ref, _position_fields(checkpoint), merge=True)

        self._run(write)

    def acquire_lease(self, stream_id: str, *, owner: str, ttl_seconds: float) -> Lease | None:
        ref = self._ref(stream_id)

        def take(transaction: Any) -> Lease | None:
            snapshot = ref.get(transaction=transaction)
            data = snapshot.to_dict() or {} if snapshot.exists else {}
            now = datetime.now(UTC)
            expires = data.get("lease_expires_at") or _EPOCH
            if data.get("owner") not in (None, owner) and expires > now:
                return None
            generation = int(data.get("generation") or 0) + 1
            lease = Lease(stream_id, owner, generation, now + timedelta(seconds=ttl_seconds))
            transaction.set(
                ref,
                {"owner": owner, "generation": generation, "lease_expires_at": lease.expires_at},
                merge=True,
            )
            return lease

        result: Lease | None = self._run(take)
        return result

    def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        """A conditional write, not a transaction: renewal runs on its own thread beside checkpoint saves
        to the same document, and two transactions reading one document lock each other out (the
        emulator then stalls both for seconds). The write carries the read's update time as its
        precondition, so a concurrent change (a save, a takeover) makes it read again."""
        ref = self._ref(lease.stream_id)
        try:
            for _ in range(5):
                snapshot = ref.get(timeout=self._timeout_s)
                data = snapshot.to_dict() or {} if snapshot.exists else {}
                if data.get("owner") != lease.owner or int(data.get("generation") or 0) != lease.generation:
                    raise LeaseLost(f"stream {lease.stream_id} is now owned by {data.get('owner') or 'nobody'}")
                renewed = Lease(lease.stream_id, lease.owner, lease.generation,
                                datetime.now(UTC) + timedelta(seconds=ttl_seconds))  # fmt: skip
                try:
                    ref.update({"lease_expires_at": renewed.expires_at}, timeout=self._timeout_s,
                               option=self._client.write_option(last_update_time=snapshot.update_time))  # fmt: skip
                except gexc.FailedPrecondition:
                    continue  # the document changed since the read: read it again
                return renewed
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error
        raise TokenStoreError(f"the lease document of {lease.stream_id} kept changing; retried")

    def release_lease(self, lease: Lease) -> None:
        ref = self._ref(lease.stream_id)

        def release(transaction: Any) -> None:
            snapshot = ref.get(transaction=transaction)
            data = snapshot.to_dict() or {} if snapshot.exists else {}
            if data.get("owner") == lease.owner and int(data.get("generation") or 0) == lease.generation:
                transaction.update(ref, {"owner": None, "lease_expires_at": _EPOCH})

        self._run(release)

    def set_position(self, stream_id: str, checkpoint: Checkpoint) -> None:
        ref = self._ref(stream_id)

        def overwrite(transaction: Any) -> None:
            snapshot = ref.get(transaction=transaction)
            data = snapshot.to_dict() or {} if snapshot.exists else {}
            fields = _position_fields(checkpoint)
            fields.update(generation=int(data.get("generation") or 0) + 1, owner=None, lease_expires_at=_EPOCH)
            transaction.set(ref, fields, merge=True)

        self._run(overwrite)

    def delete(self, stream_id: str) -> None:
        """Forget the token but keep the generation, so fencing survives a reset."""
        ref = self._ref(stream_id)

        def clear(transaction: Any) -> None:
            snapshot = ref.get(transaction=transaction)
            if snapshot.exists:
                transaction.update(ref, {"token": firestore.DELETE_FIELD, "cluster_time": firestore.DELETE_FIELD})

        self._run(clear)

    def list(self) -> list[tuple[str, Checkpoint]]:
        try:
            snapshots = list(self._collection.stream())
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error
        found = [(s.id, _checkpoint_of(s.to_dict() or {})) for s in snapshots]
        return sorted(((stream, cp) for stream, cp in found if cp is not None), key=lambda pair: pair[0])

    # ------------------------------------------------------------------ partition plans

    def _plan_ref(self, plan_id: str) -> Any:
        # A MongoDB database name never contains "." so no stream id starts with one: no collision, and
        # list() skips the document (it has no token or cluster_time).
        return self._collection.document(f".plan:{plan_id}")

    def plan_start(self, plan_id: str) -> PlanStart | None:
        try:
            snapshot = self._plan_ref(plan_id).get(timeout=self._timeout_s)
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error
        return _plan_of(snapshot.to_dict() or {}) if snapshot.exists else None

    def record_plan(self, plan_id: str, start: PlanStart) -> PlanStart:
        ref = self._plan_ref(plan_id)

        def create(transaction: Any) -> PlanStart:
            snapshot = ref.get(transaction=transaction, timeout=self._timeout_s)
            if snapshot.exists:
                return _plan_of(snapshot.to_dict() or {})
            cluster = start.cluster_time
            fields = {
                "plan": plan_id,
                "plan_start": None if cluster is None else {"t": cluster.seconds, "i": cluster.increment},
                "recorded_at": start.recorded_at or datetime.now(UTC),
            }
            transaction.set(ref, fields)
            return _plan_of(fields)

        result: PlanStart = self._run(create)
        return result

    # ------------------------------------------------------------------ balancing: leases and heartbeats

    def _stream_all(self) -> list[Any]:
        try:
            return list(self._collection.stream(timeout=self._timeout_s))
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error

    def leases(self) -> list[Lease]:
        found = []
        for snapshot in self._stream_all():
            data = snapshot.to_dict() or {}
            owner = data.get("owner")
            if snapshot.id.startswith(".") or not owner or "lease_expires_at" not in data:
                continue
            found.append(Lease(snapshot.id, owner, int(data.get("generation") or 0), data["lease_expires_at"]))
        return sorted(found, key=lambda lease: lease.stream_id)

    def _beat_ref(self, instance: str) -> Any:
        return self._collection.document(f".instance:{instance}")  # "." first: never a stream id (see plans)

    def heartbeat(self, instance: str, *, ttl_seconds: float, units: int) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
        try:
            self._beat_ref(instance).set(
                {"instance": instance, "instance_expires_at": expires, "units": units},
                timeout=self._timeout_s,
            )
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error

    def instances(self) -> list[InstanceBeat]:
        beats = []
        for snapshot in self._stream_all():
            data = snapshot.to_dict() or {}
            if snapshot.id.startswith(".instance:") and "instance_expires_at" in data:
                beats.append(InstanceBeat(data["instance"], data["instance_expires_at"], int(data.get("units") or 0)))
        return sorted(beats, key=lambda beat: beat.instance)

    def leave(self, instance: str) -> None:
        try:
            self._beat_ref(instance).delete(timeout=min(2.0, self._timeout_s))  # at stop, inside its 10 s
        except (gexc.GoogleAPIError, ValueError, OSError) as error:
            raise self._unavailable(error) from error


def _plan_of(data: dict[str, Any]) -> PlanStart:
    cluster = data.get("plan_start")
    return PlanStart(
        cluster_time=ClusterTime(seconds=cluster["t"], increment=cluster["i"]) if isinstance(cluster, dict) else None,
        recorded_at=data.get("recorded_at"),
    )
