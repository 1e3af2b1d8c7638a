"""The CrossGuard pack: ``pulumi preview --policy-pack policies``.

The rules live in reconciler/policy/ and are shared with ``reconciler validate``; each policy carries its own
enforcement level (mandatory blocks, advisory reports). Building the pack starts the analyzer and blocks, which is
why nothing else constructs it.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from reconciler.policy.crossguard import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
