"""The provisioning state: what each app owns in its target, and what its runs remember (see DESIGN.md).

- :mod:`reconciler.state.model`: the state document as plain values, and the pure updates a run makes to it
  (the ledger after a round, journal events replayed, escrow, quarantine, reset). No I/O.
- :mod:`reconciler.state.store`: where documents live (``--state``), the lock around a run, the journal.
- :mod:`reconciler.state.folder` and :mod:`reconciler.state.azblob`: the two backends.

This ``__init__`` imports nothing, so that the pure core can import the model without loading any backend.
"""
