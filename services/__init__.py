"""What runs per project: the service kinds, their spec and entry, one package per service."""
