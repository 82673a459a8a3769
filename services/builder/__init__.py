"""Builds a project's images; for now it resolves the commit and announces the build."""
