"""Code of FLOps that runs inside the user's environment (stdlib and numpy only).

Built environments import this package through a ``.pth`` file; it must never import
pydantic, paho, aiomqtt or anything else of the control plane.
"""
