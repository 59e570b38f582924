-- memory_resources 006: exactly-once task outputs. Idempotent.
--
-- A task output written with a task run id stores that id in task_output_keys (primary
-- key) in the same statement as the output row, with ON CONFLICT DO NOTHING: a second
-- write of the same task run, from any process or machine, stores nothing and the store
-- returns the first one. A separate key table (not a unique index on task_outputs) so that
-- databases already holding duplicate rows (written before this migration) still migrate:
-- the first row of each task run becomes its key, the others are left as they are.

CREATE TABLE IF NOT EXISTS task_output_keys (
    task_run_id  text        PRIMARY KEY,
    task_id      text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

INSERT INTO task_output_keys (task_run_id, task_id, created_at)
SELECT DISTINCT ON (task_run_id) task_run_id, task_id, created_at
FROM task_outputs
WHERE task_run_id IS NOT NULL
ORDER BY task_run_id, created_at, version
ON CONFLICT (task_run_id) DO NOTHING;
