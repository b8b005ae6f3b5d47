"""The fault campaign: faulty and hostile miners against a real coordinator, one class a module.

Short by default (one round of each class); ``--long`` (or ``QORTEX_LONG=1``)
runs fifteen rounds and the floods at full length.
"""
