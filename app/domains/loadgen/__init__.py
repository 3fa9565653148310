"""Load-generation workflows: the smallest shapes that still cost billable actions.

`NoopActivityWorkflow` is comparable to omes's `workflow_with_single_noop_activity` (one
start, one activity that does nothing); `TimerWorkflow` waits on one timer, so a load test can
keep many calls in flight without burning worker CPU.
"""

from app.platform.domain import Domain

DOMAIN = Domain(name="loadgen", team="platform", task_queue="loadgen")
