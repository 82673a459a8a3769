"""The manager's state store: the interface and the SQLite and MongoDB adapters."""
