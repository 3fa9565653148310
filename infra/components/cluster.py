"""Cluster: EKS through pulumi_aws.eks resources, managed node groups, IRSA and access entries.

Plain `pulumi_aws.eks` resources are used instead of the pulumi-eks component, because that one
is a remote component whose children the offline tests cannot see.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from config import EksConfig, NodeGroupConfig
from pydantic import BaseModel, ConfigDict, SkipValidation

# Addons EKS manages for us; versions float to the default for the cluster's Kubernetes version.
CORE_ADDONS = ("vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver")
# Without this the VPC CNI runs no network-policy agent, and every NetworkPolicy is inert.
ADDON_CONFIGURATION = {"vpc-cni": {"enableNetworkPolicy": "true"}}

_WORKER_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        }
    )


def irsa_trust_policy(
    oidc_arn: pulumi.Input[str], oidc_url: pulumi.Input[str], namespace: str, service_account: str
) -> pulumi.Output[str]:
    """Trust policy that lets exactly one Kubernetes service account assume a role."""

    def render(args: list[str]) -> str:
        arn, url = args
        issuer = url.removeprefix("https://")
        subject = f"system:serviceaccount:{namespace}:{service_account}"
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{issuer}:sub": subject,
                                f"{issuer}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            }
        )

    return pulumi.Output.all(oidc_arn, oidc_url).apply(render)


class EksClusterArgs(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    region: str
    config: SkipValidation[EksConfig]
    vpc_id: Any
    private_subnet_ids: list[Any]
    # Extra node groups (the storage-optimized Scylla group), keyed by name.
    extra_node_groups: SkipValidation[dict[str, NodeGroupConfig]] = {}
    tags: dict[str, str]


class EksCluster(pulumi.ComponentResource):
    """An EKS control plane with its node groups; exposes a Kubernetes provider for the rest."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("haul:cluster:EksCluster", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes secrets in {name}",
            enable_key_rotation=True,
            tags=args.tags,
            opts=child,
        )
        cluster_role = aws.iam.Role(
            f"{name}-control-plane",
            assume_role_policy=assume_role_policy("eks.amazonaws.com"),
            tags=args.tags,
            opts=child,
        )
        attach = aws.iam.RolePolicyAttachment(
            f"{name}-control-plane",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child,
        )
        self.cluster = aws.eks.Cluster(
            name,
            name=name,
            version=cfg.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=cfg.endpoint_public_access,
                public_access_cidrs=cfg.public_access_cidrs or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.secrets_key.arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attach]),
        )
        # The security group EKS puts on the control plane and on managed node groups: the one
        # database security groups admit.
        self.node_security_group_id = self.cluster.vpc_config.cluster_security_group_id
        issuer = self.cluster.identities[0].oidcs[0].issuer
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer,
            client_id_lists=["sts.amazonaws.com"],
            tags=args.tags,
            opts=child,
        )

        node_role = aws.iam.Role(
            f"{name}-nodes",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags=args.tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{arn.rsplit('/', 1)[-1]}",
                role=node_role.name,
                policy_arn=arn,
                opts=child,
            )
            for arn in _WORKER_POLICIES
        ]
        node_subnets = args.private_subnet_ids[: cfg.node_zones]
        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        for group, ng in {**cfg.node_groups, **args.extra_node_groups}.items():
            self.node_groups[group] = aws.eks.NodeGroup(
                f"{name}-{group}",
                cluster_name=self.cluster.name,
                node_group_name_prefix=f"{group}-",
                node_role_arn=node_role.arn,
                # The Scylla group spans every zone: one rack per availability zone.
                subnet_ids=args.private_subnet_ids
                if group in args.extra_node_groups
                else node_subnets,
                instance_types=ng.instance_types,
                capacity_type=ng.capacity_type,
                disk_size=ng.disk_gib,
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=ng.min_size, desired_size=ng.desired_size, max_size=ng.max_size
                ),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
                labels={"haul.dev/node-group": group},
                taints=[
                    aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=t.effect)
                    for t in ng.taints
                ],
                tags=args.tags,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=attachments,
                    ignore_changes=["scalingConfig.desiredSize"],
                ),
            )

        ebs_role = aws.iam.Role(
            f"{name}-ebs-csi",
            assume_role_policy=irsa_trust_policy(
                self.oidc_provider.arn, issuer, "kube-system", "ebs-csi-controller-sa"
            ),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi",
            role=ebs_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
            opts=child,
        )
        system_group = self.node_groups["system"]
        self.addons = [
            aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=self.cluster.name,
                addon_name=addon,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                service_account_role_arn=ebs_role.arn if addon == "aws-ebs-csi-driver" else None,
                configuration_values=json.dumps(ADDON_CONFIGURATION[addon])
                if addon in ADDON_CONFIGURATION
                else None,
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[system_group]),
            )
            for addon in CORE_ADDONS
        ]

        # The role that runs `pulumi up` must be among these: the creator gets no implicit access.
        self.access: list[pulumi.Resource] = []
        for i, role_arn in enumerate(cfg.admin_role_arns):
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{i}",
                cluster_name=self.cluster.name,
                principal_arn=role_arn,
                type="STANDARD",
                tags=args.tags,
                opts=child,
            )
            self.access.append(
                aws.eks.AccessPolicyAssociation(
                    f"{name}-admin-{i}",
                    cluster_name=self.cluster.name,
                    principal_arn=role_arn,
                    policy_arn="arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]),
                )
            )

        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
            ).apply(lambda a: kubeconfig(*a, region=args.region))
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*self.node_groups.values(), *self.addons, *self.access],
            ),
        )
        self.register_outputs(
            {
                "clusterName": self.cluster.name,
                "endpoint": self.cluster.endpoint,
                "oidcProviderArn": self.oidc_provider.arn,
                "kubeconfig": self.kubeconfig,
            }
        )


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (no static credentials)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": cluster_name,
                    "cluster": {"server": endpoint, "certificate-authority-data": ca_data},
                }
            ],
            "contexts": [
                {"name": cluster_name, "context": {"cluster": cluster_name, "user": "aws"}}
            ],
            "current-context": cluster_name,
            "users": [
                {
                    "name": "aws",
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                cluster_name,
                                "--region",
                                region,
                            ],
                        }
                    },
                }
            ],
        }
    )
