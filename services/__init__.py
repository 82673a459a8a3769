"""What runs per project: the services a project's stages deploy."""
