"""A small sample domain: a task workflow and an entity workflow, used by `haul run` and the
platform tests until the parcel pipeline is the main job."""

TASK_QUEUE = "sample"
TEAM = "platform"
