"""Prefect blocks: typed configuration plus a factory that builds the store."""
