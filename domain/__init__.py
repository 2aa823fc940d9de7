"""The pure core: change events, BSON -> JSON mapping, schemas, migrations, messages.

Nothing here does I/O or imports another layer of ours; batch scripts can use it as a library.
"""
