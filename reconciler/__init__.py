"""App provisioning as code for Entra ID: manifests, the Azure side with Pulumi, and a SCIM reconciler."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reconciler")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
