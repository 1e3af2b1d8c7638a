"""The Pulumi program: one Entra enterprise app per manifest in the stack's ``manifests`` folder.

See docs/azure.md; the work is in reconciler/azure/program.py.
"""

from reconciler.azure.program import main

main()
