"""Use cases. Services may flush but never commit: the edges commit."""
