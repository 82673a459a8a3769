"""Decides: validates project requests, creates applications and services, tracks state."""
