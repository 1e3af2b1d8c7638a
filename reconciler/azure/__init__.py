"""The Entra side: the Pulumi component per app, the program, and the offline declared-resource listing.

``component``, ``program``, ``principals`` and ``declared`` (the mock harness) import Pulumi; ``ids`` (stable
names) and ``listing`` (declared resources as data, and their diff) do not, so the core and the preview's
renderer stay free of it.
"""
