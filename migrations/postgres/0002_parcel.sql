-- Parcel ingestion and rate audit: normalized invoices, audit findings, the review queue,
-- contract rates and shipment-job audit status. Every upsert has a unique constraint behind it,
-- so a retried activity never duplicates a row.

-- One row per ingested file (content hash); seq orders revisions across files.
create table parcel_files (
    content_hash  text primary key,
    seq           bigserial unique,
    workflow_id   text not null,
    file_name     text not null default '',
    carrier       text not null default '',
    format        text not null default '',
    invoice_count integer not null default 0,
    charge_count  bigint not null default 0,
    envelope_issues jsonb not null default '[]'::jsonb,
    indexed_at    timestamptz not null default now()
);

-- The invoice by its natural key; current_revision_id points at the revision in force.
create table parcel_invoices (
    id             bigserial primary key,
    scac           text not null,
    account        text not null,
    invoice_number text not null,
    invoice_date   date,
    status         text not null default 'active' check (status in ('active', 'void')),
    current_revision_id bigint,
    updated_at     timestamptz not null default now(),
    unique nulls not distinct (scac, account, invoice_number, invoice_date)
);

-- One row per appearance of an invoice in a file (B2A: original, change, cancel).
-- A change supersedes earlier revisions; a cancel voids the invoice.
create table parcel_invoice_revisions (
    id             bigserial primary key,
    invoice_id     bigint not null references parcel_invoices (id),
    file_hash      text not null references parcel_files (content_hash),
    file_index     integer not null,
    purpose        text not null check (purpose in ('original', 'change', 'cancel')),
    status         text not null default 'current'
                   check (status in ('current', 'superseded', 'voided')),
    carrier        text not null,
    shipment_id    text not null default '',
    payment_method text not null default '',
    currency       char(3) not null,
    net_amount_due numeric(14, 2),
    declared_total numeric(14, 2),
    charges_total  numeric(16, 2) not null,
    group_count    integer not null,
    charge_count   integer not null,
    header         jsonb not null,
    created_at     timestamptz not null default now(),
    unique (file_hash, file_index)
);
create index parcel_invoice_revisions_invoice on parcel_invoice_revisions (invoice_id);

-- LX loops (EDI) or shipments (CSV); the natural key is the LX sequence within a revision.
create table parcel_charge_groups (
    id           bigserial primary key,
    revision_id  bigint not null references parcel_invoice_revisions (id),
    sequence     integer not null,
    group_key    text not null default '',
    service      text not null default '',
    zone         text not null default '',
    weight       numeric(12, 3),
    weight_unit  text not null default '',
    description  text not null default '',
    total        numeric(16, 2) not null,
    unique (revision_id, sequence)
);

create table parcel_charges (
    group_id      bigint not null references parcel_charge_groups (id),
    ordinal       integer not null,
    line_number   text not null default '',
    code          text not null default '',
    description   text not null default '',
    amount        numeric(14, 2) not null,
    currency      char(3) not null,
    rate          numeric(14, 4),
    is_credit     boolean not null default false,
    needs_review  boolean not null default false,
    review_reason text not null default '',
    primary key (group_id, ordinal)
);

-- Invoices that could not be parsed, with where and why; the rest of the file goes on.
create table parcel_invoice_failures (
    file_hash      text not null references parcel_files (content_hash),
    file_index     integer not null,
    invoice_number text,
    error_type     text not null,
    message        text not null,
    segment        text,
    position       integer,
    recorded_at    timestamptz not null default now(),
    primary key (file_hash, file_index)
);

-- Contract rates by carrier, service, zone and weight break ('' service or zone: any).
create table contract_rates (
    carrier       text not null,
    service       text not null default '',
    zone          text not null default '',
    weight_break  numeric(10, 3) not null,
    rate_per_unit numeric(12, 4) not null,
    minimum       numeric(12, 2) not null default 0,
    currency      char(3) not null default 'USD',
    primary key (carrier, service, zone, weight_break)
);

-- One audit result per charge group; the charge-group key makes a retried batch harmless.
create table audit_findings (
    group_id     bigint primary key references parcel_charge_groups (id),
    revision_id  bigint not null references parcel_invoice_revisions (id),
    billed       numeric(16, 2) not null,
    expected     numeric(16, 2),
    difference   numeric(16, 2),
    currency     char(3) not null,
    discrepancy  boolean not null,
    reasons      text[] not null default '{}',
    audited_at   timestamptz not null default now()
);
create index audit_findings_revision on audit_findings (revision_id) where discrepancy;

-- Discrepancies waiting for a human, with the reason and the amounts.
create table review_queue (
    id           bigserial primary key,
    group_id     bigint not null unique references parcel_charge_groups (id),
    revision_id  bigint not null references parcel_invoice_revisions (id),
    reason       text not null,
    billed       numeric(16, 2) not null,
    expected     numeric(16, 2),
    difference   numeric(16, 2),
    currency     char(3) not null,
    status       text not null default 'open' check (status in ('open', 'resolved', 'void')),
    queued_at    timestamptz not null default now()
);
create index review_queue_open on review_queue (queued_at) where status = 'open';

-- Shipment jobs: every event that reached update_rate_audit_status, once, and the status it
-- computed from them.
create table shipment_job_events (
    event_id   text primary key,
    job_key    text not null,
    kind       text not null,
    payload    jsonb not null default '{}'::jsonb,
    applied_at timestamptz not null default now()
);
create index shipment_job_events_job on shipment_job_events (job_key);

create table shipment_jobs (
    job_key        text primary key,
    audit_status   text not null,
    revisions      integer not null default 0,
    tasks_done     integer not null default 0,
    paid           numeric(16, 2) not null default 0,
    billed         numeric(16, 2) not null default 0,
    open_reviews   integer not null default 0,
    events_applied integer not null default 0,
    updated_at     timestamptz not null default now()
);
