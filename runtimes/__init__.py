"""Where services run: the runtime interface and the local, process and Oakestra runtimes."""
