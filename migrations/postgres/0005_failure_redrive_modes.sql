-- Redrive modes: a reset records its point (first or last completed workflow task) and whether
-- signals and updates were re-applied; a re-run leaves both null.
alter table failure_redrives
    add column reset_to        text check (reset_to in ('first', 'last')),
    add column reapply_signals boolean;
