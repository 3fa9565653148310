"""Artifacts: the ECR repository of the haul image and the claim-check S3 bucket.

Workflows keep large payloads (carrier files, PDFs) out of Temporal history by writing them to
the claim-check bucket and passing the key; the workers' IRSA role is the only reader/writer.
The load generator's parcel_ingest users write the same claim-check keys (the workers read
them there), through a policy of their own: put and read under the prefix, never delete.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
from pydantic import BaseModel, ConfigDict


class ArtifactsArgs(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    prod: bool
    tags: dict[str, str]


def bucket_access_policy(bucket_arn: str) -> str:
    """Least privilege on the claim-check bucket: objects in it, and listing it. Nothing else."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ClaimCheckObjects",
                    "Effect": "Allow",
                    "Action": [
                        "s3:GetObject",
                        "s3:PutObject",
                        "s3:DeleteObject",
                        "s3:AbortMultipartUpload",
                    ],
                    "Resource": f"{bucket_arn}/*",
                },
                {
                    "Sid": "ClaimCheckList",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": bucket_arn,
                },
            ],
        }
    )


CLAIM_CHECK_PREFIX = "claim-check"


def loadtest_access_policy(bucket_arn: str) -> str:
    """What load tests need of the claim-check prefix: write and read back, no delete.

    Keys are content-addressed, so a put can only write the bytes a key already names."""
    prefix = f"{CLAIM_CHECK_PREFIX}/"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "LoadTestObjects",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                    "Resource": f"{bucket_arn}/{prefix}*",
                },
                {
                    "Sid": "LoadTestList",
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": bucket_arn,
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                },
            ],
        }
    )


class Artifacts(pulumi.ComponentResource):
    def __init__(self, name: str, args: ArtifactsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("haul:artifacts:Artifacts", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{name}-haul",
            name=f"{name}/haul",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")
            ],
            force_delete=not args.prod,
            tags=args.tags,
            opts=child,
        )
        self.bucket = aws.s3.Bucket(
            f"{name}-claim-check",
            bucket_prefix=f"{name}-claim-check-",
            force_destroy=not args.prod,
            tags=args.tags,
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-claim-check",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-claim-check",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms"
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-claim-check",
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-claim-checks",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    # Past the longest namespace retention, nothing can redrive a payload.
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=90),
                )
            ],
            opts=child,
        )
        self.access_policy = aws.iam.Policy(
            f"{name}-claim-check-access",
            description="Read and write claim-check payloads in the haul bucket only",
            policy=self.bucket.arn.apply(bucket_access_policy),
            tags=args.tags,
            opts=child,
        )
        self.loadtest_policy = aws.iam.Policy(
            f"{name}-claim-check-loadtest",
            description="Load tests: put and read claim-check payloads, never delete",
            policy=self.bucket.arn.apply(loadtest_access_policy),
            tags=args.tags,
            opts=child,
        )
        self.register_outputs(
            {"repositoryUrl": self.repository.repository_url, "bucket": self.bucket.bucket}
        )
