"""The federated-training core shared by the aggregator and the learners.

The parent side of the user-code worker, FedAvg, the best-model rule, the training wire
messages and topics, the MQTT bus, checkpoints, and the round machinery.
"""
