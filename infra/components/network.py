"""Network: a VPC across availability zones with public and private subnets and NAT.

An existing VPC and its subnets can be given instead; then nothing is created.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws
from config import NetworkConfig
from pydantic import BaseModel, ConfigDict, SkipValidation


class NetworkArgs(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    config: SkipValidation[NetworkConfig]
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    vpc_cidr: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("haul:network:Network", name, None, opts)
        cfg = args.config
        if cfg.existing is not None:
            self.vpc_id = pulumi.Output.from_input(cfg.existing.vpc_id)
            self.private_subnet_ids = [
                pulumi.Output.from_input(s) for s in cfg.existing.private_subnet_ids
            ]
            self.public_subnet_ids = [
                pulumi.Output.from_input(s) for s in cfg.existing.public_subnet_ids
            ]
            self.vpc_cidr = aws.ec2.get_vpc_output(id=cfg.existing.vpc_id).cidr_block
        else:
            self._create(name, args)
        self.register_outputs({"vpcId": self.vpc_id, "privateSubnetIds": self.private_subnet_ids})

    def _create(self, name: str, args: NetworkArgs) -> None:
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=cfg.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={**args.tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags={**args.tags, "Name": f"{name}-igw"}, opts=child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**args.tags, "Name": f"{name}-public"},
            opts=child,
        )
        # /20 per subnet: private subnets first (pods take many addresses with the VPC CNI),
        # public subnets after them.
        blocks = list(ipaddress.ip_network(cfg.cidr).subnets(new_prefix=20))
        zones = cfg.availability_zones
        self.public_subnet_ids, self.private_subnet_ids = [], []
        nat_ids: list[pulumi.Output[str]] = []
        for i, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=str(blocks[len(zones) + i]),
                map_public_ip_on_launch=False,
                tags={**args.tags, "Name": f"{name}-public-{zone}", "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=child,
            )
            self.public_subnet_ids.append(public.id)
            if cfg.nat_gateways == "per-az" or i == 0:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{zone}",
                    domain="vpc",
                    tags={**args.tags, "Name": f"{name}-nat-{zone}"},
                    opts=child,
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{zone}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags={**args.tags, "Name": f"{name}-nat-{zone}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                availability_zone=zone,
                cidr_block=str(blocks[i]),
                tags={
                    **args.tags,
                    "Name": f"{name}-private-{zone}",
                    "kubernetes.io/role/internal-elb": "1",
                },
                opts=child,
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                routes=[
                    aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat_ids[-1])
                ],
                tags={**args.tags, "Name": f"{name}-private-{zone}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=child,
            )
            self.private_subnet_ids.append(private.id)
