"""The pure core: dispatch, quorum, lifecycle and the kind interface.

Nothing in this package opens a socket or a file or reads a clock; time and
randomness come in as arguments, so every rule is tested directly.
"""
