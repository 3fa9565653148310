-- Platform tables: the ingestion idempotency ledger and the failure store.

-- One row per ingested input, keyed by workflow ID; outlives Temporal's retention.
create table idempotency (
    workflow_id   text primary key,
    content_hash  text not null,
    outcome       text not null default 'running',
    detail        jsonb not null default '{}'::jsonb,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

-- Every terminal workflow failure or timeout, with the original arguments, for redrive.
create table workflow_failures (
    id             bigserial primary key,
    workflow_id    text not null,
    run_id         text not null,
    workflow_type  text not null,
    task_queue     text not null,
    namespace      text not null,
    arguments      jsonb not null,
    error_type     text not null,
    error_message  text not null,
    failed_at      timestamptz not null default now(),
    redriven_at    timestamptz,
    redrive_run_id text,
    unique (workflow_id, run_id)
);
create index workflow_failures_open on workflow_failures (failed_at) where redriven_at is null;
