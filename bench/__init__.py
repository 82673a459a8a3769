"""The FLOps benchmark suite: ``python -m bench [--short] [--out FILE]``.

Each scenario starts what it measures as real processes (mosquitto with the production
configuration, the stack as ``python -m cli up --broker external``), measures a figure and,
in the same run, a bare-MQTT baseline with the same client library, and reports both with
their ratio and the issue's target. See docs/performance.md.
"""
