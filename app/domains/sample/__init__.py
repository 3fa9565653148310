"""A small sample domain: a task workflow and an entity workflow, used by `haul run` and the
platform tests until the parcel pipeline is the main job."""

from app.platform.domain import Domain

DOMAIN = Domain(name="sample", team="platform", task_queue="sample")
