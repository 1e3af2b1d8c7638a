"""One module per command; each exposes ``register(subparsers)`` (see :mod:`reconciler.cli`)."""
