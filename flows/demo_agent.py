"""The demo agent (``make demo`` / ``python -m flows.demo_agent``).

A small research agent on the embedded default (no server; Prefect ephemeral mode). One
declaration, ``@remember(memory)``, makes every run write its history and its tasks'
outputs. Inside the flow the agent uses ``memory.context(...)`` (context with a TTL, events)
and ``memory.lock(...)``, and indexes and queries embeddings. Run it twice: the summary of
the second run lists the first.
"""

from __future__ import annotations

import os

# A fresh Prefect home migrates its database on the first ephemeral start, which can take
# longer than Prefect's 20 s default on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # keep the summary readable

import sys
from typing import Any

from prefect import flow, task
from prefect.context import FlowRunContext

from flows.embedding import embed
from memory_resources.blocks import MemoryStore
from memory_resources.prefect import remember

memory = MemoryStore(context_ttl=3600)
"""Embedded default: $MEMORY_RESOURCES_HOME/memory.db (else ~/.prefect/memory_resources)."""

NOTES = {
    "demo:note-1": "Prefect flows retry failed tasks and record every state change.",
    "demo:note-2": "Redis keeps agent context with a time to live and event streams.",
    "demo:note-3": "PostgreSQL stores flow run history and task outputs durably.",
    "demo:note-4": "A vector index finds notes similar to a question by cosine similarity.",
    "demo:note-5": "A lock with a fencing token protects a shared resource between agents.",
}


@task
def plan(goal: str) -> dict[str, Any]:
    """Split the goal into steps (a stand-in for an LLM call)."""
    return {"goal": goal, "steps": ["recall notes", "answer", "remember"]}


@task
def index_notes(notes: dict[str, str]) -> int:
    """Index the notes' embeddings (idempotent: same ids are replaced)."""
    for note_id, text in notes.items():
        memory.api.index_embedding(note_id, embed(text), {"source": "demo", "text": text})
    return len(notes)


@task
def recall(question: str, top_k: int = 2) -> list[dict[str, Any]]:
    """The notes most similar to the question."""
    matches = memory.api.query_embeddings(embed(question), top_k=top_k,
                                          filter_metadata={"source": "demo"})
    return [{"id": m["id"], "score": round(m["score"], 3), "text": m["metadata"]["text"]}
            for m in matches]


@task
def answer(goal: str, notes: list[dict[str, Any]]) -> str:
    """Compose the answer from the recalled notes."""
    return f"{goal} -> " + " ".join(note["text"] for note in notes)


@remember(memory)
@flow(name="demo-agent")
def demo_agent(session_id: str = "demo-session",
               goal: str = "Where does the agent store its flow run history?") -> dict[str, Any]:
    """Plan, recall notes by similarity, answer, and remember the session."""
    ctx = memory.context(session_id)  # TTL from the block: context_ttl=3600 s
    runs_before = int(ctx.data.get("runs", 0))
    ctx.update(goal=goal, runs=runs_before + 1)
    ctx.append_event({"type": "goal", "goal": goal})
    steps = plan(goal)
    with memory.lock("demo:notes-index", timeout=30) as lock:  # one indexer at a time
        indexed = index_notes(NOTES)
        fencing_token = lock.fencing_token
    notes = recall(goal)
    reply = answer(goal, notes)
    ctx.append_event({"type": "answer", "answer": reply})
    run_context = FlowRunContext.get()
    assert run_context is not None and run_context.flow_run is not None
    flow_run = run_context.flow_run
    return {
        "flow_id": str(flow_run.flow_id),
        "run_id": str(flow_run.id),
        "steps": steps["steps"],
        "indexed": indexed,
        "fencing_token": fencing_token,
        "notes": notes,
        "answer": reply,
        "session_runs": runs_before + 1,
        "events": len(ctx.events()),
    }


def summary(result: dict[str, Any], session_id: str = "demo-session") -> str:
    """A short readable summary of this run and every earlier run of the flow."""
    history = memory.api.read_flow_run_history(result["flow_id"], limit=10)
    context = memory.api.get_context(session_id)
    audit = memory.api.read_audit_log(flow_run_id=result["run_id"], limit=1000)
    operations: dict[str, int] = {}
    for entry in audit:
        operations[entry["operation"]] = operations.get(entry["operation"], 0) + 1
    lines = [
        f"answer: {result['answer']}",
        "recalled: " + ", ".join(f"{n['id']} ({n['score']})" for n in result["notes"]),
        f"context {session_id!r}: runs={context['data']['runs'] if context else '?'}, "
        f"events={result['events']}, expires_at={context['expires_at'] if context else '?'}",
        f"lock demo:notes-index fencing token: {result['fencing_token']}",
        "writes attributed to this run (audit): "
        + ", ".join(f"{op} x{n}" for op, n in sorted(operations.items())),
        f"run history of demo-agent ({len(history)} run(s), newest first):",
    ]
    for row in history:
        marker = "this run" if row["run_id"] == result["run_id"] else "earlier"
        duration = f"{row['duration']:.2f}s" if row["duration"] is not None else "-"
        lines.append(f"  {row['created_at'][:19]}  {row['data'].get('flow_run_name', '?'):<24}"
                     f"{row['status'] or '?':<10}{duration:>8}  [{marker}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the demo once and print the summary."""
    args = sys.argv[1:] if argv is None else argv
    goal = " ".join(args) if args else "Where does the agent store its flow run history?"
    result = demo_agent(goal=goal)
    print(summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
