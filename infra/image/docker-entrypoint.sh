#!/bin/sh
# Entrypoints of the haul image: worker and migrate. Anything else is run as
# given (for example `haul db scylla-bootstrap` in the Scylla keyspace Job, or
# `haul loadtest locust-worker` in the load generator).
set -eu
case "${1:-}" in
  worker)
    shift
    exec haul worker "$@"
    ;;
  migrate)
    shift
    exec haul db migrate "$@"
    ;;
  "")
    exec haul --help
    ;;
  *)
    exec "$@"
    ;;
esac
