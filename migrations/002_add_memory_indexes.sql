-- memory_resources 002: indexes for the common query patterns. Idempotent.
-- Indexes on the partitioned parents cascade to every partition, present and future.
-- Every write also inserts a key row and an audit row, so indexes are kept to the read
-- paths that need them (audit reads by operation scan by time; prune scans the keys).

CREATE INDEX IF NOT EXISTS flow_run_history_flow_created_idx
    ON flow_run_history (flow_id, created_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS flow_run_history_status_created_idx
    ON flow_run_history (status, created_at DESC, seq DESC);
CREATE INDEX IF NOT EXISTS flow_run_history_created_idx
    ON flow_run_history (created_at DESC, seq DESC);

CREATE INDEX IF NOT EXISTS flow_run_history_keys_run_idx
    ON flow_run_history_keys (run_id);

CREATE INDEX IF NOT EXISTS task_outputs_task_run_idx
    ON task_outputs (task_run_id) WHERE task_run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS task_outputs_flow_run_idx
    ON task_outputs (flow_run_id) WHERE flow_run_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS audit_log_occurred_idx
    ON audit_log (occurred_at DESC);
CREATE INDEX IF NOT EXISTS audit_log_target_occurred_idx
    ON audit_log (target, occurred_at DESC);
CREATE INDEX IF NOT EXISTS audit_log_flow_run_occurred_idx
    ON audit_log (flow_run_id, occurred_at DESC) WHERE flow_run_id IS NOT NULL;

CREATE INDEX IF NOT EXISTS memory_context_expires_idx
    ON memory_context (expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX IF NOT EXISTS vector_embeddings_metadata_idx
    ON vector_embeddings USING gin (metadata jsonb_path_ops);
