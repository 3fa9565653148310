-- Handoff: a workflow open on the old cluster continues on the new one under the same ID.
-- The old run writes its continuation here (state and pending events) before it completes;
-- events that reach it afterwards are appended; whoever first finds the old run closed starts
-- the continuation on the new cluster, under the ID's advisory lock (app/platform/router.py).

create table workflow_handoffs (
    workflow_id    text primary key,
    workflow_type  text not null,
    task_queue     text not null,
    from_cluster   text not null,
    to_cluster     text not null,
    -- The run on the old cluster that was handed off.
    from_run_id    text not null,
    -- The continuation's input; its `pending` list takes forwarded events (by event_id).
    snapshot       jsonb not null,
    -- Events forwarded after the snapshot (already merged into snapshot.pending).
    forwarded      integer not null default 0,
    -- snapshotted -> resuming -> resumed
    status         text not null check (status in ('snapshotted', 'resuming', 'resumed')),
    -- While resuming: the latest run of the ID on the new cluster before the start ('' none).
    new_run_before text,
    resumed_run_id text,
    snapshotted_at timestamptz not null default now(),
    resumed_at     timestamptz
);

create index workflow_handoffs_unresumed on workflow_handoffs (from_cluster)
    where status <> 'resumed';
