"""Environment images on the node: content-addressed virtual environments built with uv.

An image is a folder ``<data_dir>/images/sha256-<digest>/`` holding a venv with a
repository's pinned, hash-locked packages, copies of our env-side packages (``flops_utils``,
``flops_env``) made importable by a ``.pth`` file, and ``manifest.json``, written last. Names
like the original's (``<registry>/<user>/<repo>/learner:<commit>``) point at digests.
"""
