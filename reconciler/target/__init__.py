"""The embedded SCIM target: scim2-server on loopback, with file persistence, for demos, development and tests."""
