"""SCIM 2.0: attribute paths and normalisation (pure), and the HTTP client (the only network code)."""
