"""Entra's own provisioning job, from the same manifest: the Graph ``synchronizationSchema`` a manifest compiles to
(:mod:`~reconciler.entra.schema`), the managed part of a live schema (:mod:`~reconciler.entra.managed`), an
existing app's Graph configuration as a manifest (:mod:`~reconciler.entra.imported`), and the small Graph client
the Pulumi provider and ``reconciler import`` share (:mod:`~reconciler.entra.graphapi`, the only module here that
does I/O)."""
