"""Users' ML repositories: where a ``ml_repo_url`` comes from, its one commit, its files.

``resolve_repo`` picks the source (the ``repo_sources`` setting, the URL itself, or, when
the URL cannot be reached and matches one, a repository bundled with FLOps), resolves it to
one commit and exports that commit's files into the data dir; every later stage uses that
export. ``check_contract`` refuses a repository without the contract's files, with the
original's texts.
"""
