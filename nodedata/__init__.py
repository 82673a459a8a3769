"""Data on the node: datasets, partitions (``.npz``), manifests, mock SLAs, learner shares.

Layout under the data dir: ``data/<tag>/manifest.json`` and ``data/<tag>/part-NNN.npz``
(arrays ``image`` and ``label`` for the bundled datasets; never pickle). ``assign`` gives
each learner of a project a disjoint share of its tags' rows.
"""
