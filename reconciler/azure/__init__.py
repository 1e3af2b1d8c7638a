"""The Entra side: the Pulumi component per app, the program, and the offline declared-resource listing.

Importing this package imports Pulumi; the core (manifest, plan, apply) never does.
"""
