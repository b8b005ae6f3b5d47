"""SQLite persistence: ``schema`` (versioned migrations), ``facts`` (every write),
``writer`` (the one writer, group commit) and ``reader`` (queries on their own connection).
"""
