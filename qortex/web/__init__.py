"""The web layer: thin Starlette adapters that parse, call the coordinator, and answer."""
