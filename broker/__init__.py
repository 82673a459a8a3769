"""Carries messages: topic names, message schemas, the MQTT link and the embedded broker."""
