"""PostgresPersistence: one RDS PostgreSQL instance for a Temporal cluster.

RDS creates a single database; the Temporal chart's schema job creates `temporal` and
`temporal_visibility` on it (`createDatabase: true`) and applies the schemas, because Pulumi
cannot reach a private instance. On the Scylla stack the instance holds visibility only.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_random as random
from config import PostgresConfig
from pydantic import BaseModel, ConfigDict, SkipValidation

PORT = 5432
MASTER_USER = "temporal"
APP_DATABASE = "haul"
# Characters RDS refuses in a master password: '/', '@', '"' and space.
PASSWORD_SPECIALS = "!#$%^&*()-_=+[]{}<>:?"
RDS_CA = "rds-ca-rsa2048-g1"


def app_database_url(user: str, password: str, host: str, ca_path: str) -> str:
    """A DSN on the app database: TLS with full verification against the RDS CA bundle."""
    return (
        f"postgresql://{user}:{quote(password, safe='')}@{host}:{PORT}/{APP_DATABASE}"
        f"?sslmode=verify-full&sslrootcert={ca_path}"
    )


def temporal_parameters(cfg: PostgresConfig, force_ssl: bool) -> dict[str, str]:
    """Parameters tuned for Temporal's write-heavy history and churn-heavy visibility tables."""
    return {
        "max_connections": str(cfg.max_connections),
        "rds.force_ssl": "1" if force_ssl else "0",
        # Visibility rows are updated on every state change; vacuum them early and often.
        "autovacuum_vacuum_scale_factor": "0.05",
        "autovacuum_analyze_scale_factor": "0.02",
        "autovacuum_vacuum_cost_limit": "2000",
        "autovacuum_naptime": "15",
        "idle_in_transaction_session_timeout": "60000",
        "log_min_duration_statement": "1000",
    }


class PostgresPersistenceArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    config: SkipValidation[PostgresConfig]
    prod: bool
    vpc_id: Any
    subnet_ids: list[Any]
    # Security groups of the EKS nodes and pods: the only sources admitted on 5432.
    client_security_group_ids: list[Any]
    # Refuse plain connections: every ClusterSpec store on this instance has TLS on.
    force_ssl: bool
    clusters: list[str]
    # Connections the haul app pods may open to the `haul` database here (0: none).
    app_connections: int = 0
    tags: dict[str, str]


class PostgresPersistence(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: PostgresPersistenceArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("haul:persistence:PostgresPersistence", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        tags = {
            **args.tags,
            "haul.dev/temporal-clusters": ",".join(args.clusters),
            "haul.dev/app-connections": str(args.app_connections),
        }

        key = aws.kms.Key(
            f"{name}-storage",
            description=f"Storage encryption of RDS {name}",
            enable_key_rotation=True,
            tags=tags,
            opts=child,
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=args.subnet_ids, tags=tags, opts=child
        )
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-db",
            vpc_id=args.vpc_id,
            description=f"RDS {name}: Postgres from the EKS cluster only",
            tags=tags,
            opts=child,
        )
        for i, source in enumerate(args.client_security_group_ids):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-db-from-eks-{i}",
                security_group_id=self.security_group.id,
                referenced_security_group_id=source,
                ip_protocol="tcp",
                from_port=PORT,
                to_port=PORT,
                description="Postgres from EKS nodes and pods",
                opts=child,
            )
        for i, cidr in enumerate(cfg.allowed_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-db-from-cidr-{i}",
                security_group_id=self.security_group.id,
                cidr_ipv4=None if ":" in cidr else cidr,
                cidr_ipv6=cidr if ":" in cidr else None,
                ip_protocol="tcp",
                from_port=PORT,
                to_port=PORT,
                description=f"Postgres from {cidr}",
                opts=child,
            )
        major = cfg.engine_major
        self.parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            name=f"{name}-temporal-pg{major}",
            family=f"postgres{major}",
            description=f"Temporal tuning for {name}",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=k, value=v, apply_method="pending-reboot")
                for k, v in temporal_parameters(cfg, args.force_ssl).items()
            ],
            tags=tags,
            opts=child,
        )
        self.password = random.RandomPassword(
            f"{name}-master",
            length=32,
            special=True,
            override_special=PASSWORD_SPECIALS,
            opts=child,
        )
        self.instance = aws.rds.Instance(
            name,
            identifier=name,
            engine="postgres",
            engine_version=cfg.engine_version,
            instance_class=cfg.instance_class,
            allocated_storage=cfg.allocated_storage_gib,
            max_allocated_storage=cfg.max_allocated_storage_gib,
            storage_type="gp3",
            storage_encrypted=cfg.storage_encrypted,
            kms_key_id=key.arn,
            db_name=APP_DATABASE,
            username=MASTER_USER,
            password=self.password.result,
            port=PORT,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[self.security_group.id],
            parameter_group_name=self.parameter_group.name,
            publicly_accessible=cfg.publicly_accessible,
            multi_az=cfg.multi_az,
            ca_cert_identifier=RDS_CA,
            backup_retention_period=cfg.backup_retention_days,
            deletion_protection=cfg.deletion_protection,
            skip_final_snapshot=not args.prod,
            final_snapshot_identifier=f"{name}-final" if args.prod else None,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            enabled_cloudwatch_logs_exports=["postgresql"],
            tags=tags,
            opts=child,
        )
        self.secret = aws.secretsmanager.Secret(
            f"{name}-master",
            name=f"haul/{name}/master",
            description=f"Master credentials of RDS {name}",
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-master",
            secret_id=self.secret.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(self.password.result, self.instance.address).apply(
                    lambda a: json.dumps(
                        {"username": MASTER_USER, "password": a[0], "host": a[1], "port": PORT}
                    )
                )
            ),
            opts=child,
        )
        self.address = self.instance.address
        self.register_outputs(
            {"address": self.instance.address, "secretArn": self.secret.arn, "port": PORT}
        )
