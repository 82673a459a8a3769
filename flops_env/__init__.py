"""Our code that runs inside a built environment (stdlib and numpy only): the user-code worker."""
