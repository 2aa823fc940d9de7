"""Built-in JSON Schemas (<type>/<version>.json) and their migrations (<type>/migrations.py)."""
