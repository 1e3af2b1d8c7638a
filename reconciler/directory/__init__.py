"""The directory: users, groups and direct membership, read from a snapshot file or Microsoft Graph.

Objects keep Graph's property names (``id``, ``mobilePhone`` ...), exactly as a snapshot or Graph holds them;
:mod:`reconciler.directory.names` reads them by Entra's source attribute names (``objectId``, ``mobile`` ...).
Only :mod:`reconciler.directory.graph` touches the network (:mod:`reconciler.directory.delta`, Graph's delta query,
through its requests); :mod:`reconciler.directory.changes` merges changes into a cached directory, without I/O.
Which directory a run reads, and what it reads of it, follow from the manifest: :mod:`reconciler.directory_source`
and :mod:`reconciler.selection`, above this package.
"""

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.directory.snapshot import dump_snapshot, load_snapshot

__all__ = ["Directory", "DirectoryGroup", "DirectoryUser", "dump_snapshot", "load_snapshot"]
