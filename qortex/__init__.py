"""Qortex: trusted results from untrusted volunteer computers."""

__version__ = "0.1.0"
