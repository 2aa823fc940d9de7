"""Sub-commands of ``connector``; importing this package registers them on the group."""

from entrypoints.commands import replay, simulate  # noqa: F401
