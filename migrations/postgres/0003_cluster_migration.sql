-- Cluster migration: the phase every router follows, each router's acknowledgement, and the
-- per-workflow-ID claims the routing steps take (see app/platform/router.py).

-- At most one migration row (id = 1). No row means every router serves one cluster.
create table cluster_migration (
    id             smallint primary key default 1 check (id = 1),
    old_cluster    text not null,
    new_cluster    text,
    phase          text not null,
    step           text not null default '',
    -- Increases on every change; routers acknowledge it.
    version        bigint not null,
    phase_began_at timestamptz not null default now(),
    -- Phase name -> when it began, for `haul migrate status`.
    began          jsonb not null default '{}'::jsonb,
    updated_at     timestamptz not null default now()
);

-- Every transition, with who asked and why.
create table cluster_migration_history (
    id          bigserial primary key,
    version     bigint not null,
    from_phase  text not null,
    to_phase    text not null,
    old_cluster text not null,
    new_cluster text,
    actor       text not null,
    reason      text not null,
    at          timestamptz not null default now()
);

-- One row per live router process; a row not seen within the TTL is a dead router.
create table cluster_routers (
    router_id    text primary key,
    host         text not null,
    pid          integer not null,
    acked_version bigint not null,
    started_at   timestamptz not null default now(),
    last_seen    timestamptz not null default now()
);

-- A workflow ID that the claim step sent to the new cluster; routers at the guard step read it.
create table cluster_claims (
    workflow_id text primary key,
    cluster     text not null,
    version     bigint not null,
    claimed_at  timestamptz not null default now()
);
