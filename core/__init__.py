"""Foundations shared by every FLOps component: errors, per-user paths, settings, ids."""
