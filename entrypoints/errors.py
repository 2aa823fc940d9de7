"""Every failure a command can meet, as the contract's exit code and one line naming the problem and
the fix (CONTRACT §3: never a bare traceback).

One table, matched on the exception's class names along its MRO, so this module imports neither
pymongo nor the Google libraries: an error of a library that was never imported cannot occur, and
``connector simulate`` stays as light as it is. Anything not in the table still becomes one line
(exit 1) that says it is unexpected and that ``--verbose`` shows the traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.redaction import redact

USAGE, FAILED, INTERRUPTED = 2, 1, 130
MAX_LINE = 400

_NO_CREDENTIALS = (
    "no Google credentials found: run `gcloud auth application-default login` or set "
    "GOOGLE_APPLICATION_CREDENTIALS (on Cloud Run: give the service a service account); "
    "to use the emulators instead set PUBSUB_EMULATOR_HOST and FIRESTORE_EMULATOR_HOST"
)


def one_line(text: str) -> str:
    """Whitespace (newlines from gRPC and pymongo messages included) collapsed; secrets masked; capped."""
    line = " ".join(redact(text).split())
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _file(error: BaseException) -> str:
    filename = getattr(error, "filename", None)
    reason = getattr(error, "strerror", None) or _text(error)
    return f"cannot read {filename}: {reason}; check the path" if filename else f"{_text(error)}; check the path"


def _mongo_timeout(error: BaseException) -> str:
    return (
        f"MongoDB did not answer in time ({_text(error).split(', Timeout:')[0]}); check mongodb.uri, that the "
        "server runs and that this machine may reach it"
    )


# (class name as "module.QualName", exit code, message) in the order they are tried along the MRO.
_TABLE: dict[str, tuple[int, Callable[[BaseException], str]]] = {
    "entrypoints.config.ConfigError": (USAGE, _text),
    "entrypoints.cli.WorkFailed": (FAILED, _text),
    "adapters.schema_files.SchemaLoadError": (USAGE, _text),
    "domain.schema_registry.UnknownSchemaError": (
        USAGE,
        lambda e: f"{_text(e)}; `connector admin schemas list` shows the known types and versions",
    ),
    "application.ports.TokenStoreError": (FAILED, _text),
    "adapters.pubsub_admin.PubSubAdminError": (FAILED, _text),
    "google.auth.exceptions.DefaultCredentialsError": (USAGE, lambda _: _NO_CREDENTIALS),
    "google.auth.exceptions.GoogleAuthError": (
        FAILED,
        lambda e: f"Google authentication failed: {_text(e)}; check the credentials and network access",
    ),
    "google.api_core.exceptions.GoogleAPIError": (
        FAILED,
        lambda e: f"a Google API call failed: {type(e).__name__}: {_text(e)}",
    ),
    "pymongo.errors.InvalidURI": (USAGE, lambda e: f"mongodb.uri is not a MongoDB URI: {_text(e)}; fix mongodb.uri"),
    "pymongo.errors.ConfigurationError": (USAGE, lambda e: f"mongodb.uri: {_text(e)}; fix mongodb.uri"),
    "pymongo.errors.ServerSelectionTimeoutError": (FAILED, _mongo_timeout),
    "pymongo.errors.PyMongoError": (FAILED, lambda e: f"MongoDB: {type(e).__name__}: {_text(e)}"),
    "builtins.FileNotFoundError": (USAGE, _file),
    "builtins.IsADirectoryError": (USAGE, _file),
    "builtins.NotADirectoryError": (USAGE, _file),
    "builtins.PermissionError": (USAGE, _file),
    "builtins.OSError": (FAILED, _text),
    "builtins.ValueError": (FAILED, _text),
}


def describe(error: BaseException) -> tuple[int, str]:
    """The exit code and the one line for ``error``."""
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED, "interrupted"
    for cls in type(error).__mro__:
        entry = _TABLE.get(f"{cls.__module__}.{cls.__qualname__}")
        if entry is not None:
            code, message = entry
            return code, one_line(message(error))
    return FAILED, one_line(
        f"unexpected {type(error).__name__}: {_text(error)} (`connector --verbose …` shows where; please report it)"
    )
