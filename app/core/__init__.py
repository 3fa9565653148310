"""Core: settings, database access, process helpers and files; no Temporal, no domain."""
