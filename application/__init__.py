"""Use cases and the ports they need (typing.Protocol). Imports only the domain."""
