"""Helpers for raypipe's own tests (sample builders). Production code never imports this package
(tests/unit/test_foundation_imports.py checks it)."""
