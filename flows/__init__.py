"""Example agent flows built on the memory_resources Prefect integration.

``python -m flows.demo_agent`` (``make demo``) and ``python -m flows.rag_agent`` run with no
server: Prefect in ephemeral mode, memory on the embedded default.
"""

