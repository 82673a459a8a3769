"""Runs the embedded default stack: broker, manager, and the local runtime of services."""
