"""Rate audit: contract rates, per-charge-group findings, and each shipment job's audit status.

Rate audit runs on the parcel workers (same task queue): the per-invoice workflow calls its
activities, and `update_rate_audit_status` converges every event about one shipment job.
"""

from app.platform.domain import Domain

DOMAIN = Domain(name="rate_audit", team="parcel", task_queue="parcel")
