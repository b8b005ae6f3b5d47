"""The CLI miner: key files, and a reconnecting runner around the client session."""
