"""Our code that runs inside a built environment, beside the user's code.

Copied into every image and made importable there by a ``.pth`` file. It may use the
standard library and numpy only; a module that needs more (the flavor's libraries, the
scoring server's web stack) imports them inside its functions, so importing the package
never fails in an environment without them.
"""
