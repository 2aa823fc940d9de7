"""Sub-commands of ``connector``; importing this package registers them on the group."""

from entrypoints.commands import admin, admin_units, backfill, check, replay, run, simulate  # noqa: F401
