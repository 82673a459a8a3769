"""Compatibility modules for ML repositories written for the original FLOps (stdlib and numpy).

Repositories import ``flops_utils.ml_repo_templates`` and
``flops_utils.ml_repo_building_blocks.load_dataset`` exactly as they did with the original's
``flops-utils`` package; here they are our own small modules, copied into every built
environment. ``load_dataset()`` serves the learner's share of the node's data as described in
``flops_utils._contract``.
"""
