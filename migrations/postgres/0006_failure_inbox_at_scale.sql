-- When the poller recorded each failure (or a stuck run's close): its lag is recorded_at minus
-- failed_at, which loadtest/bench_failures.py measures and the inbox can show.
alter table workflow_failures add column recorded_at timestamptz not null default now();

-- The inbox's queries at 100,000 failures (see loadtest/bench_failures.py). Each group key
-- leads an index with the status and close time: a summary by that key over open failures is
-- an index-only scan that arrives grouped, and a list filtered by it comes in time order.
drop index workflow_failures_fingerprint;
create index workflow_failures_by_fingerprint
    on workflow_failures (fingerprint, status, failed_at);
create index workflow_failures_by_type on workflow_failures (workflow_type, status, failed_at);
create index workflow_failures_by_team on workflow_failures (owner_team, status, failed_at);
create index workflow_failures_by_queue on workflow_failures (task_queue, status, failed_at);
create index workflow_failures_by_close on workflow_failures (close_status, status, failed_at);
-- Newest first with the id as tie-break, read backwards: no sort for any page of the list.
drop index workflow_failures_status;
create index workflow_failures_by_status on workflow_failures (status, failed_at, id);
