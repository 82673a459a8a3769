"""The trained model: its artifact, its environment image, its inference service, predict.

Our side (this venv): ``artifact`` writes and reads the saved best model with its manifest,
``image`` names the trained-model image and lists what it installs, ``service`` runs the
scoring server (``flops_env.serve``) as a child in that image's Python, ``predict`` is the
client of ``flops predict``; ``entries`` are the ``trbuilder`` and ``trmodel`` kinds' entries
and ``facts`` the data their stages end on. The model itself is only ever loaded in a
built environment.
"""
