"""What runs per project: one package per service kind."""
