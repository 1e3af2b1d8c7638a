"""SCIM 2.0: attribute paths (pure), normalisation (pure), and the HTTP client (the only network code here)."""
