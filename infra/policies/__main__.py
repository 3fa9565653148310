"""The haul policy pack. Run with `pulumi preview --policy-pack infra/policies` from infra/.

Building PolicyPack starts the analyzer's gRPC server and blocks, so this is the only place it
is built; the rules live in rules.py, which the tests import.
"""

from pulumi_policy import PolicyPack
from rules import policies

PolicyPack(name="haul", policies=policies())
