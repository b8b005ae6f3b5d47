"""The miner WebSocket protocol, with no I/O: messages in, messages out.

``messages`` holds the frames, ``server`` the coordinator's side of a
connection and ``client`` the miner's side. The WebSocket endpoint and the CLI
miner only pump frames through these classes. ``docs/protocol.md`` is the
specification.
"""
