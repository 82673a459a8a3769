"""Builds a project's images: the repository at one commit, the learner's and aggregator's."""
