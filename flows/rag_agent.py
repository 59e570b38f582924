"""A retrieval-augmented agent: context, events, embeddings, and a lock around the corpus.

``python -m flows.rag_agent "your question"``. The agent keeps a conversation per session
(context with a TTL plus an event per turn), ingests a small corpus into the vector index
under a lock (the shared resource: two agents must not re-index it at once; the fencing
token is recorded with the ingest), retrieves passages for the question and composes an
extractive answer with citations. Tasks reach the memory with ``current_memory()``, so the
same tasks work with whichever ``MemoryStore`` captures the flow; a deployment can pass one
as the ``memory`` parameter (block name, ``$ref`` or instance).
"""

from __future__ import annotations

import os

# A fresh Prefect home migrates its database on the first ephemeral start, which can take
# longer than Prefect's 20 s default on a busy machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # keep the answer readable

import hashlib
import re
import sys
from typing import Any

from prefect import flow, task

from flows.embedding import embed
from memory_resources.blocks import MemoryStore
from memory_resources.prefect import current_memory, remember

memory = MemoryStore(context_ttl=24 * 3600)
"""The default store (embedded); a run may pass another as the ``memory`` parameter."""

CORPUS: dict[str, str] = {
    "prefect-hooks": (
        "Prefect calls state hooks when a flow run changes state. Hooks run in the flow's "
        "process. An exception raised by a hook is logged and the run still completes."
    ),
    "outbox": (
        "When a hook cannot write, the record is kept in a local outbox file. The outbox is "
        "replayed at the next successful write, so no run history is lost."
    ),
    "locks": (
        "A lock has a lease that expires. Each acquisition gets a fencing token that "
        "increases, so a resource can reject writes from a holder whose lease expired."
    ),
    "vectors": (
        "Embeddings are indexed with metadata. A query returns the most similar embeddings "
        "by cosine similarity, filtered by metadata."
    ),
}

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")


def corpus_version(corpus: dict[str, str]) -> str:
    """A digest of the corpus: re-ingest only when it changed."""
    digest = hashlib.sha256()
    for doc_id in sorted(corpus):
        digest.update(doc_id.encode() + b"\0" + corpus[doc_id].encode() + b"\0")
    return digest.hexdigest()[:16]


@task
def ingest(corpus: dict[str, str]) -> dict[str, Any]:
    """Index the corpus, one embedding per sentence, unless this version is indexed already."""
    mem = current_memory()
    version = corpus_version(corpus)
    state = mem.context("rag:corpus")
    with mem.lock("rag:corpus", timeout=60, blocking_timeout=30) as lock:
        if state.data.get("version") == version:
            return {"version": version, "indexed": 0, "fencing_token": lock.fencing_token}
        indexed = 0
        for doc_id, text in corpus.items():
            for number, sentence in enumerate(_SENTENCE.split(text.strip())):
                mem.api.index_embedding(
                    f"rag:{doc_id}:{number}", embed(sentence),
                    {"source": "rag", "doc_id": doc_id, "text": sentence},
                )
                indexed += 1
        state.set({"version": version, "chunks": indexed, "fencing_token": lock.fencing_token},
                  ttl=None)
        return {"version": version, "indexed": indexed, "fencing_token": lock.fencing_token}


@task
def retrieve(question: str, top_k: int = 3) -> list[dict[str, Any]]:
    """The passages closest to the question."""
    matches = current_memory().api.query_embeddings(
        embed(question), top_k=top_k, filter_metadata={"source": "rag"})
    return [{"doc_id": m["metadata"]["doc_id"], "text": m["metadata"]["text"],
             "score": round(float(m["score"]), 3)} for m in matches]


@task
def compose(question: str, passages: list[dict[str, Any]], turns: int) -> dict[str, Any]:
    """An extractive answer: the passages sharing the most words with the question."""
    words = set(_WORD.findall(question.lower()))
    ranked = sorted(passages, key=lambda p: (-len(words & set(_WORD.findall(p["text"].lower()))),
                                             -p["score"]))
    chosen = [p for p in ranked[:2] if words & set(_WORD.findall(p["text"].lower()))]
    if not chosen:
        return {"answer": "I do not know from the corpus.", "citations": [], "turn": turns}
    return {"answer": " ".join(p["text"] for p in chosen),
            "citations": sorted({p["doc_id"] for p in chosen}), "turn": turns}


@remember(memory)
@flow(name="rag-agent")
def rag_agent(question: str, session_id: str = "rag-session",
              memory: MemoryStore | None = None) -> dict[str, Any]:
    """Answer ``question`` from the corpus, remembering the conversation of ``session_id``."""
    mem = current_memory()  # the ``memory`` parameter when given, else the declared store
    conversation = mem.context(session_id)
    turns = int(conversation.data.get("turns", 0)) + 1
    conversation.append_event({"type": "question", "text": question, "turn": turns})
    corpus_state = ingest(CORPUS)
    passages = retrieve(question)
    reply = compose(question, passages, turns)
    conversation.update(turns=turns, last_question=question, last_citations=reply["citations"])
    conversation.append_event({"type": "answer", "text": reply["answer"], "turn": turns})
    return {**reply, "corpus": corpus_state, "passages": passages}


def main(argv: list[str] | None = None) -> int:
    """Ask one question and print the answer with its citations."""
    args = sys.argv[1:] if argv is None else argv
    question = " ".join(args) or "What happens when a hook cannot write?"
    result = rag_agent(question)
    print(f"Q: {question}\nA: {result['answer']}\nsources: {', '.join(result['citations'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
