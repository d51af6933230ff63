"""Sub-commands of the `stratascope` CLI.

Each module here defines ``register(subparsers)``, which adds its sub-command with
``set_defaults(func=...)``. The CLI discovers the modules, so a new command is a new file.
"""
