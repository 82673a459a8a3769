"""The MQTT client side: the link of long-running processes, requests, log following."""
