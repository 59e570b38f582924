"""An end-of-run Prefect artifact summarising what a captured flow run wrote to memory.

Opt in per flow with ``@summarize()`` placed ABOVE ``@remember(memory)``::

    @summarize()
    @remember(memory)
    @flow
    def agent(...): ...

Its hook runs after the capture hook on every terminal state (completed, failed, crashed,
cancelled), reads back from the store the run's history row, its audit trail (context,
event, lock, history and output writes attributed to the run) and its task outputs, and
publishes a markdown artifact (key ``memory-<flow name>``) on the flow run; with
``tables=True`` also a table artifact of the task outputs. Like the capture hooks it never
fails the flow: an error is logged (structlog warning) and no artifact is made.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from ..errors import ConfigurationError, MemoryValidationError
from ..log import get_logger
from ..records import AuditRecord, FlowRunRecord
from .capture import require_target

_log = get_logger(__name__)

F = TypeVar("F")

AUDIT_LIMIT = 1000
"""Most audit rows of one run read for a summary (the summary says when it hit this)."""
MAX_TARGETS_SHOWN = 5


class OutputSummary(TypedDict):
    """One task output written by the run."""

    task_id: str
    task_name: str | None
    version: int | None
    bytes: int | None
    truncated: bool


class RunSummary(TypedDict):
    """What one flow run wrote, read back from the store."""

    flow_run_id: str
    store: str
    block: str | None
    history: FlowRunRecord | None
    operations: dict[str, int]
    targets: dict[str, list[str]]
    outputs: list[OutputSummary]
    audit_rows: int
    audit_complete: bool
    left_in_outbox: dict[str, int]
    """Records of this run still in the outbox when the summary was made, by kind
    (``history``, ``output``; ``set_aside`` for records the store rejected for good)."""
    outbox: str
    """The outbox file those records are in ("" when not known)."""
    read_error: str | None
    """Why the store could not be read back (the summary then shows the outbox only)."""


def run_summary(api: Any, flow_run_id: str, *, store: str = "",
                outbox: Any = None, block: str | None = None) -> RunSummary:
    """Read back what ``flow_run_id`` wrote through ``api`` (a MemoryAPI), and what it left
    in ``outbox`` (a :class:`~memory_resources.capture.outbox.Outbox`, if given); ``block``
    is the saved block's name, for the read-back commands."""
    left: dict[str, int] = {}
    if outbox is not None:
        try:
            left = outbox.left_by_flow_run(flow_run_id)
        except Exception as exc:  # the summary is still worth making
            _log.warning("cannot read the outbox for the summary", error=str(exc)[:500])
    operations: Counter[str] = Counter()
    targets: dict[str, list[str]] = {}
    outputs: list[OutputSummary] = []
    history: list[FlowRunRecord] = []
    audit: list[AuditRecord] = []
    read_error = None
    try:
        history = api.read_flow_run_history(None, flow_run_id, limit=1)
        audit = api.read_audit_log(flow_run_id=flow_run_id, limit=AUDIT_LIMIT)
        for row in reversed(audit):  # oldest first
            operations[row["operation"]] += 1
            seen = targets.setdefault(row["operation"], [])
            if row["target"] not in seen:
                seen.append(row["target"])
            if row["operation"] == "output.write":
                outputs.append(_output_summary(api, row))
    except Exception as exc:  # e.g. the store is down: still say what the outbox holds
        if outbox is None:
            raise
        read_error = f"{type(exc).__name__}: {exc}"[:500]
    return RunSummary(
        flow_run_id=flow_run_id, store=store, block=block,
        history=history[0] if history else None,
        operations=dict(sorted(operations.items())), targets=targets, outputs=outputs,
        audit_rows=len(audit), audit_complete=len(audit) < AUDIT_LIMIT,
        left_in_outbox=left, outbox=str(outbox.path) if outbox is not None else "",
        read_error=read_error,
    )


def _output_summary(api: Any, row: AuditRecord) -> OutputSummary:
    record = api.read_task_output(row["target"])
    if record is None:
        return OutputSummary(task_id=row["target"], task_name=None, version=None, bytes=None,
                             truncated=False)
    encoded = json.dumps(record["output"], default=str, ensure_ascii=False).encode()
    metadata = record["metadata"]
    return OutputSummary(
        task_id=row["target"], task_name=metadata.get("task_name"),
        version=record["version"], bytes=len(encoded),
        truncated=bool(metadata.get("truncated")),
    )


def _cell(value: Any) -> str:
    """A value as one markdown table cell (pipes and newlines escaped)."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return f"`{_cell(value)}`" if value not in (None, "") else ""


def summary_markdown(summary: RunSummary) -> str:
    """The summary as markdown: the run's row, the writes by operation, the task outputs."""
    history = summary["history"]
    lines = [f"### Memory written by flow run {_code(summary['flow_run_id'])}", ""]
    if summary["store"]:
        lines += [f"Store: {_code(summary['store'])}", ""]
    if summary.get("read_error"):
        lines += [f"The store could not be read back: {_cell(summary['read_error'])}", ""]
    elif history is None:
        lines += ["No history row was stored for this run (see the outbox: "
                  "`memory-resources outbox status`).", ""]
    else:
        error = ": ".join(filter(None, [history["error_type"], history["error_message"]]))
        duration = (f"{history['duration']:.2f} s" if history["duration"] is not None
                    else "")
        parameters = ", ".join(sorted(history["parameters"] or {}))
        lines += [
            "| flow | status | attempt | duration | parameters | error |",
            "|---|---|---|---|---|---|",
            f"| {_cell(history['flow_name'])} | **{_cell(history['status'])}** "
            f"| {_cell(history['run_count'])} | {duration} | {_cell(parameters)} "
            f"| {_cell(error[:300])} |",
            "",
        ]
    left = summary.get("left_in_outbox") or {}
    if left:
        waiting = sum(n for kind, n in left.items() if kind != "set_aside")
        parts = [f"{n} {kind}" for kind, n in sorted(left.items()) if kind != "set_aside"]
        lines += [f"**This run left {waiting} record(s) in the outbox** "
                  f"({', '.join(parts)}) in {_code(summary.get('outbox'))}: they are written at "
                  "the next successful capture, or now with "
                  f"`memory-resources outbox replay --outbox {_cell(summary.get('outbox'))}`.",
                  ""] if waiting else []
        if left.get("set_aside"):
            lines += [f"**{left['set_aside']} record(s) of this run were set aside** (the store "
                      "rejected them): see `memory-resources outbox status`.", ""]
    if summary["operations"]:
        lines += ["**Writes attributed to this run** (audit log)", "",
                  "| operation | count | targets |", "|---|---|---|"]
        for operation, count in summary["operations"].items():
            shown = summary["targets"].get(operation, [])
            names = ", ".join(_code(t) for t in shown[:MAX_TARGETS_SHOWN])
            if len(shown) > MAX_TARGETS_SHOWN:
                names += f" and {len(shown) - MAX_TARGETS_SHOWN} more"
            lines.append(f"| {_cell(operation)} | {count} | {names} |")
        lines.append("")
        if not summary["audit_complete"]:
            lines += [f"(first {AUDIT_LIMIT} audit rows only)", ""]
    if summary["outputs"]:
        lines += ["**Task outputs**", "", "| task | task run | version | bytes | truncated |",
                  "|---|---|---|---|---|"]
        for output in summary["outputs"]:
            lines.append(
                f"| {_cell(output['task_name'])} | {_code(output['task_id'])} "
                f"| {_cell(output['version'])} | {_cell(output['bytes'])} "
                f"| {'yes' if output['truncated'] else 'no'} |")
        lines.append("")
    lines.append(read_back_line(history["flow_name"] if history else None, summary["block"]))
    return "\n".join(lines)


def _shell_word(text: str) -> str:
    """``text`` as one shell word (quoted unless it is plain)."""
    return text if re.fullmatch(r"[A-Za-z0-9._/:=@+-]+", text) else shlex.quote(text)


def read_back_line(flow_name: str | None, block: str | None) -> str:
    """The commands that read the run back; ``--block NAME`` for a saved block's store."""
    option = f" --block {_shell_word(block)}" if block else ""
    flow = _shell_word(flow_name) if flow_name else "<flow>"
    return (f"Read it back: `memory-resources history --flow {flow}{option}`, "
            f"`memory-resources outputs --task <task run>{option}`.")


def artifact_key(flow_name: str) -> str:
    """``memory-<flow name>`` in the form Prefect accepts (lowercase, digits, dashes)."""
    slug = re.sub(r"[^a-z0-9]+", "-", flow_name.lower()).strip("-") or "flow"
    return f"memory-{slug}"[:100]


def publish_summary(summary: RunSummary, *, key: str | None = None,
                    tables: bool = False) -> list[str]:
    """Create the markdown (and, with ``tables``, the outputs table) artifact on the run.

    Uses the Prefect API of this process with the flow run id given explicitly, so it works
    from any hook (also a runner's cancellation hook). Returns the artifact ids.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    history = summary["history"]
    key = key or artifact_key((history["flow_name"] if history else None) or "flow")
    description = "What this flow run wrote to memory (memory_resources)"
    created = []
    with get_client(sync_client=True) as client:
        artifact = client.create_artifact(ArtifactCreate(
            key=key, type="markdown", description=description,
            data=summary_markdown(summary), flow_run_id=summary["flow_run_id"]))
        created.append(str(artifact.id))
        if tables and summary["outputs"]:
            table = client.create_artifact(ArtifactCreate(
                key=f"{key}-outputs"[:100], type="table",
                description="Task outputs this flow run stored (memory_resources)",
                data=json.dumps(summary["outputs"]), flow_run_id=summary["flow_run_id"]))
            created.append(str(table.id))
    return created


class SummaryArtifactHook:
    """A flow state hook publishing :func:`run_summary` as an artifact (never raises)."""

    def __init__(self, memory: Any, *, key: str | None = None, tables: bool = False) -> None:
        self.memory = memory
        self.key = key
        self.tables = tables
        self.__name__ = "memory_resources_summary_artifact"

    def __call__(self, flow: Any, flow_run: Any, state: Any) -> None:
        try:
            from .hooks import parameter_target

            memory: Any = parameter_target(flow, flow_run) or self.memory
            label = memory.label() if callable(getattr(memory, "label", None)) else ""
            writer = memory.capture_writer() if callable(
                getattr(memory, "capture_writer", None)) else None
            block = getattr(memory, "_block_document_name", None)
            summary = run_summary(memory.api, str(flow_run.id), store=label, block=block,
                                  outbox=writer.outbox if writer is not None else None)
            publish_summary(summary, key=self.key, tables=self.tables)
        except Exception as exc:  # never into the user's flow
            _log.warning("memory summary artifact not created", flow_run_id=str(flow_run.id),
                         error=f"{type(exc).__name__}: {exc}"[:1000])


def summarize(memory: Any = None, *, key: str | None = None,
              tables: bool = False) -> Callable[[F], F]:
    """Decorator adding the end-of-run memory artifact; put it above ``@remember(memory)``.

    ``memory`` defaults to the one ``remember`` declared (a run's ``MemoryStore`` parameter
    still wins, as for the capture). ``key`` overrides the artifact key; ``tables=True``
    adds a table artifact of the task outputs.
    """
    if memory is not None:
        require_target(memory, "summarize(memory)")

    def decorate(flow: F) -> F:
        from prefect.flows import Flow

        if not isinstance(flow, Flow):
            raise ConfigurationError(
                "summarize() decorates a Prefect flow: put it above @remember(memory) "
                f"and @flow, got {type(flow).__name__}")
        target = memory if memory is not None else getattr(
            flow, "__memory_resources_target__", None)
        if target is None or not hasattr(target, "api"):
            raise ConfigurationError(
                "summarize() needs the memory to read: put it above @remember(memory) "
                "or pass summarize(memory)")
        if key is not None and not re.fullmatch(r"[a-z0-9-]+", key):
            raise MemoryValidationError(
                "key", f"an artifact key has only lowercase letters, digits and dashes, "
                f"got {key!r}")
        hook = SummaryArtifactHook(target, key=key, tables=tables)
        summarized: Any = flow.with_options(
            on_completion=[*flow.on_completion_hooks, hook],
            on_failure=[*flow.on_failure_hooks, hook],
            on_crashed=[*flow.on_crashed_hooks, hook],
            on_cancellation=[*flow.on_cancellation_hooks, hook],
        )
        summarized.__memory_resources_target__ = target
        return summarized  # type: ignore[no-any-return]

    return decorate


__all__ = [
    "OutputSummary",
    "RunSummary",
    "SummaryArtifactHook",
    "artifact_key",
    "publish_summary",
    "read_back_line",
    "run_summary",
    "summarize",
    "summary_markdown",
]
