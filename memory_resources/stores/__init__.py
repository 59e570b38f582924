"""Storage engines. Nothing here imports Prefect.

* ``sqlite``   — the embedded default: every capability in one SQLite file.
* ``redis``    — context, events and Redlock locks on Redis / Redis Cluster.
* ``postgres`` — run history, task outputs, audit trail (and context/events/locks).
* ``numpy_index`` — the exact in-process vector index.
* ``pgvector`` — vectors in PostgreSQL with HNSW.
"""
