"""AppDatabaseRoles: the app's own database roles, so no haul pod holds the RDS master user.

`haul_migrate` owns the app database's tables (the `migrate` Job applies migrations as it);
`haul_app` may only read and write rows in them (workers, load-test workers). A Job in the
Temporal cluster's namespace, the one place the master password already lives, creates both
with psql, idempotently, and moves tables an older release made as the master user to
`haul_migrate`. Each role's password is generated and reaches its pods only in its own URL.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from pydantic import BaseModel, ConfigDict

from app import versions
from components.postgres import APP_DATABASE, MASTER_USER, PORT
from components.workers import CONTAINER_SECURITY, secret_env

APP_USER = "haul_app"
MIGRATE_USER = "haul_migrate"
ROLES_SECRET = "haul-db-roles"
CA_DIR = "/etc/rds-ca"

ROLES_SQL = f"""\
SELECT 'CREATE ROLE {MIGRATE_USER}' WHERE NOT EXISTS
  (SELECT FROM pg_roles WHERE rolname = '{MIGRATE_USER}') \\gexec
SELECT 'CREATE ROLE {APP_USER}' WHERE NOT EXISTS
  (SELECT FROM pg_roles WHERE rolname = '{APP_USER}') \\gexec
ALTER ROLE {MIGRATE_USER} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD :'migrate_password';
ALTER ROLE {APP_USER} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
GRANT {MIGRATE_USER} TO CURRENT_USER;
REVOKE ALL ON DATABASE {APP_DATABASE} FROM PUBLIC;
GRANT CONNECT ON DATABASE {APP_DATABASE} TO {MIGRATE_USER}, {APP_USER};
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO {MIGRATE_USER};
GRANT USAGE ON SCHEMA public TO {APP_USER};
SELECT format('ALTER TABLE public.%I OWNER TO {MIGRATE_USER}', tablename) FROM pg_tables
  WHERE schemaname = 'public' AND tableowner <> '{MIGRATE_USER}' \\gexec
ALTER DEFAULT PRIVILEGES FOR ROLE {MIGRATE_USER} IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_USER};
ALTER DEFAULT PRIVILEGES FOR ROLE {MIGRATE_USER} IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO {APP_USER};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_USER};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_USER};
"""


def roles_command() -> list[str]:
    """psql with the passwords as psql variables (quoted by psql, never in the SQL text)."""
    return [
        "sh",
        "-c",
        'psql -v ON_ERROR_STOP=1 -v app_password="$APP_PASSWORD" '
        "-v migrate_password=\"$MIGRATE_PASSWORD\" -f - <<'SQL'\n" + ROLES_SQL + "SQL\n",
    ]


class AppDatabaseRolesArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    # The Temporal cluster's namespace: it holds the master password's Secret and the RDS CA.
    namespace: str
    master_secret: str
    ca_config_map: str
    ca_file: str
    host: Any


class AppDatabaseRoles(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: AppDatabaseRolesArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:appdb:AppDatabaseRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        app = random.RandomPassword(f"{name}-app", length=32, special=False, opts=child)
        migrate = random.RandomPassword(f"{name}-migrate", length=32, special=False, opts=child)
        self.app_password = app.result
        self.migrate_password = migrate.result
        secret = k8s.core.v1.Secret(
            f"{name}-roles",
            metadata={"name": ROLES_SECRET, "namespace": args.namespace},
            type="Opaque",
            string_data={"app-password": app.result, "migrate-password": migrate.result},
            opts=child,
        )

        self.job = k8s.batch.v1.Job(
            f"{name}-roles",
            metadata={"name": "haul-db-roles", "namespace": args.namespace},
            spec={
                "backoffLimit": 6,
                "activeDeadlineSeconds": 900,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "haul-db-roles"}},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 999},
                        "containers": [
                            {
                                "name": "roles",
                                "image": f"postgres:{versions.RDS_POSTGRES_ENGINE}",
                                "command": roles_command(),
                                "env": [
                                    {"name": "PGHOST", "value": args.host},
                                    {"name": "PGPORT", "value": str(PORT)},
                                    {"name": "PGDATABASE", "value": APP_DATABASE},
                                    {"name": "PGUSER", "value": MASTER_USER},
                                    {"name": "PGSSLMODE", "value": "verify-full"},
                                    {"name": "PGSSLROOTCERT", "value": f"{CA_DIR}/{args.ca_file}"},
                                    secret_env("PGPASSWORD", args.master_secret, "password"),
                                    secret_env("APP_PASSWORD", ROLES_SECRET, "app-password"),
                                    secret_env(
                                        "MIGRATE_PASSWORD", ROLES_SECRET, "migrate-password"
                                    ),
                                ],
                                "volumeMounts": [
                                    {"name": "rds-ca", "mountPath": CA_DIR, "readOnly": True}
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"cpu": "200m", "memory": "128Mi"},
                                },
                                "securityContext": CONTAINER_SECURITY,
                            }
                        ],
                        "volumes": [{"name": "rds-ca", "configMap": {"name": args.ca_config_map}}],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[secret]),
        )
        self.register_outputs({"job": "haul-db-roles"})
