"""Contract rates and the audit of one charge group against them (pure logic, no I/O).

A contract rate is keyed by carrier (SCAC), service, zone and weight break; an empty service or
zone matches any. For a charge group, the most specific matching rate wins (service and zone
both matching beat one, which beats none), and within it the highest weight break not above the
group's weight. The expected base charge is max(minimum, weight x rate per unit). The billed base
charge is the sum of the group's base-freight charges (codes in BASE_CHARGE_CODES).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources

# L108 400 (linehaul) in a 210; FRT in UPS and FedEx billing data.
BASE_CHARGE_CODES = frozenset({"400", "FRT"})
# Billed above expected by more than this is a discrepancy (1%, and at least one cent).
TOLERANCE = Decimal("0.01")
# Charge-level reasons a finding keeps of each kind; the rest are counted in one more reason,
# so a group of a million flagged charges costs no more memory than one of twenty.
MAX_CHARGE_REASONS = 20
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class ContractRate:
    carrier: str
    service: str
    zone: str
    weight_break: Decimal
    rate_per_unit: Decimal
    minimum: Decimal
    currency: str = "USD"


@dataclass(frozen=True)
class AuditCharge:
    code: str
    amount: Decimal
    is_credit: bool = False
    needs_review: bool = False
    review_reason: str = ""


@dataclass
class AuditGroup:
    """One charge group as the audit sees it. Charges are folded into running figures as they
    arrive (``add``), so a group is never held whole; ``charges`` given at construction are
    folded by ``audit_group``."""

    group_id: int
    carrier: str
    service: str
    zone: str
    weight: Decimal | None
    currency: str
    charges: list[AuditCharge] = field(default_factory=list)
    billed: Decimal = Decimal(0)  # base-freight charges
    has_base: bool = False
    flagged: list[str] = field(default_factory=list)  # the parser's review reasons
    negative: list[str] = field(default_factory=list)  # negative non-credit charges
    more_flagged: int = 0  # reasons past MAX_CHARGE_REASONS, counted only
    more_negative: int = 0

    def add(self, c: AuditCharge) -> None:
        if c.code in BASE_CHARGE_CODES:
            self.billed += c.amount
            self.has_base = True
        if c.needs_review and c.review_reason:
            if len(self.flagged) < MAX_CHARGE_REASONS:
                self.flagged.append(c.review_reason)
            else:
                self.more_flagged += 1
        elif c.amount < 0 and not c.is_credit and not c.needs_review:
            if len(self.negative) < MAX_CHARGE_REASONS:
                self.negative.append(
                    f"negative amount {c.amount} on non-credit charge {c.code or '(no code)'}")
            else:
                self.more_negative += 1

    def fold(self) -> None:
        """Fold the charges given at construction into the running figures."""
        charges, self.charges = self.charges, []
        for c in charges:
            self.add(c)

    def charge_reasons(self) -> list[str]:
        reasons = list(self.flagged)
        if self.more_flagged:
            reasons.append(f"and {self.more_flagged:,} more charges flagged for review")
        reasons += self.negative
        if self.more_negative:
            reasons.append(f"and {self.more_negative:,} more negative non-credit charges")
        return reasons


@dataclass(frozen=True)
class Finding:
    group_id: int
    billed: Decimal
    expected: Decimal | None
    difference: Decimal | None
    currency: str
    reasons: tuple[str, ...]

    @property
    def discrepancy(self) -> bool:
        return bool(self.reasons)


def find_rate(
    rates: Iterable[ContractRate], service: str, zone: str, weight: Decimal
) -> ContractRate | None:
    """The contract rate for a service, zone and weight, or None when the contract has none."""
    best: tuple[int, Decimal] | None = None
    chosen = None
    for rate in rates:
        if rate.service not in ("", service) or rate.zone not in ("", zone):
            continue
        if rate.weight_break > weight:
            continue
        rank = (bool(rate.service) + bool(rate.zone), rate.weight_break)
        if best is None or rank > best:
            best, chosen = rank, rate
    return chosen


def audit_group(group: AuditGroup, rates: list[ContractRate]) -> Finding:
    """Compare the group's billed base charge with the contract, and flag what needs a human."""
    group.fold()
    reasons = group.charge_reasons()
    billed, has_base = group.billed, group.has_base
    expected = difference = None
    if has_base:
        if not rates:
            reasons.append(f"no contract rates for carrier {group.carrier!r}")
        elif group.weight is None:
            reasons.append("the charge group has no weight to rate")
        else:
            rate = find_rate(rates, group.service, group.zone, group.weight)
            if rate is None:
                reasons.append(
                    f"no contract rate for service {group.service!r}, zone {group.zone!r}, "
                    f"weight {group.weight}"
                )
            else:
                expected = max(rate.minimum, group.weight * rate.rate_per_unit).quantize(
                    _CENT, ROUND_HALF_UP
                )
                difference = (billed - expected).quantize(_CENT)
                allowed = max(_CENT, (expected * TOLERANCE).quantize(_CENT, ROUND_HALF_UP))
                if difference > allowed:
                    reasons.append(
                        f"billed {billed} for base freight, contract says {expected} "
                        f"(over by {difference})"
                    )
    return Finding(
        group_id=group.group_id,
        billed=billed.quantize(_CENT),
        expected=expected,
        difference=difference,
        currency=group.currency,
        reasons=tuple(reasons),
    )


def sample_contracts() -> list[ContractRate]:
    """The contracts shipped with haul for the sample carriers (see sample_contracts.csv)."""
    text = resources.files("app.domains.rate_audit").joinpath("sample_contracts.csv").read_text()
    return parse_contracts(text)


def parse_contracts(text: str) -> list[ContractRate]:
    """Contract rows from CSV text with the header of sample_contracts.csv."""
    out = []
    for row in csv.DictReader(text.splitlines()):
        out.append(
            ContractRate(
                carrier=row["carrier"].strip().upper(),
                service=row["service"].strip(),
                zone=row["zone"].strip(),
                weight_break=Decimal(row["weight_break"]),
                rate_per_unit=Decimal(row["rate_per_unit"]),
                minimum=Decimal(row["minimum"] or "0"),
                currency=(row.get("currency") or "USD").strip(),
            )
        )
    return out
