-- The failure inbox: one record per failed, timed-out, terminated, cancelled or stuck run,
-- keyed by (cluster, namespace, workflow ID, run ID) so a repeat from either source is a no-op,
-- with what a redrive needs and a fingerprint that groups failures of one cause.

alter table workflow_failures
    add column cluster            text not null default '',
    add column owner_team         text not null default '',
    -- Failed, TimedOut, Terminated, Canceled, or Stuck (open, with TemporalReportedProblems).
    add column close_status       text not null default 'Failed',
    -- The WorkflowExecutionStarted input, as Temporal payloads (base64), for an exact redrive.
    add column input_payloads     jsonb not null default '[]'::jsonb,
    add column failure_stack      text not null default '',
    add column attempt            integer not null default 1,
    add column parent_workflow_id text,
    add column parent_run_id      text,
    add column fingerprint        text not null default '',
    add column status             text not null default 'open'
                                  check (status in ('open', 'resolved')),
    add column notes              text not null default '',
    add column closed_at          timestamptz,
    add column updated_at         timestamptz not null default now();

alter table workflow_failures drop constraint workflow_failures_workflow_id_run_id_key;
alter table workflow_failures
    add constraint workflow_failures_run unique (cluster, namespace, workflow_id, run_id);
create index workflow_failures_fingerprint on workflow_failures (fingerprint, failed_at);
create index workflow_failures_status on workflow_failures (status, failed_at);

-- Every redrive of a failure: the mode, the new run, and its outcome once it closes.
create table failure_redrives (
    id             bigserial primary key,
    failure_id     bigint not null references workflow_failures (id),
    mode           text not null,
    new_run_id     text not null,
    outcome        text not null default 'Running',
    requested_at   timestamptz not null default now(),
    closed_at      timestamptz
);
create index failure_redrives_failure on failure_redrives (failure_id);
create index failure_redrives_open on failure_redrives (requested_at) where closed_at is null;

-- How far the poller has read each cluster's and namespace's visibility (by close time).
create table failure_watermarks (
    cluster     text not null,
    namespace   text not null,
    high_water  timestamptz not null,
    updated_at  timestamptz not null default now(),
    primary key (cluster, namespace)
);
