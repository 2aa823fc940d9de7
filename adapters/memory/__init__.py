"""In-memory adapters: fakes that record what happened, for tests and for running without Google."""
