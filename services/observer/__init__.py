"""Remembers: each project's observer keeps its live log, durable, sequenced and gapless."""
