"""Test stand-in for the env-side flops_utils package (the real one is built elsewhere)."""
