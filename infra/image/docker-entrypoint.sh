#!/bin/sh
# Entrypoints of the haul image: worker, api and migrate. Anything else is run as
# given (for example `haul db scylla-bootstrap` in the Scylla keyspace Job, or
# `haul loadtest locust-worker` in the load generator).
set -eu
case "${1:-}" in
  worker)
    shift
    exec haul worker "$@"
    ;;
  api)
    shift
    # The image's HEALTHCHECK reads /healthz on HAUL_WORKER_HEALTH_PORT; the api serves its
    # own /healthz on its listening port, so point the check there.
    HAUL_WORKER_HEALTH_PORT="${HAUL_API_PORT:-8080}"
    export HAUL_WORKER_HEALTH_PORT
    exec haul api --host 0.0.0.0 --port "${HAUL_API_PORT:-8080}" "$@"
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
