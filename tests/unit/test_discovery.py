import sys
import textwrap
from pathlib import Path

import pytest

from app.platform.discovery import DuplicateRegistrationError, discover


def test_discovery_finds_the_sample_domain() -> None:
    found = discover(["app.domains"])
    sample = found.queues["sample"]
    assert {w.__name__ for w in sample.workflows} >= {"GreetingWorkflow", "LedgerEntityWorkflow"}
    assert [c.__name__ for c in sample.activity_classes] == ["SampleActivities"]


def _package(root: Path, name: str, modules: dict[str, str]) -> None:
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for mod, body in modules.items():
        (pkg / f"{mod}.py").write_text(textwrap.dedent(body))


WORKFLOW = """
from temporalio import workflow
from app.platform.domain import Domain

DOMAIN = Domain(name="d", team="t", task_queue="q")

@DOMAIN.workflow(name="Same")
class {cls}:
    @workflow.run
    async def run(self) -> None:
        return None
"""

ACTIVITY = """
from app.platform.domain import Domain, activity_method

DOMAIN = Domain(name="d", team="t", task_queue="q")

@DOMAIN.activities
class {cls}:
    @activity_method(name="same_activity")
    async def go(self) -> None:
        return None
"""


@pytest.mark.parametrize(("template", "kind"), [(WORKFLOW, "workflow"), (ACTIVITY, "activity")])
def test_duplicate_names_are_refused_naming_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, kind: str
) -> None:
    pkg = f"dup_{kind}_pkg"
    _package(
        tmp_path, pkg, {"one": template.format(cls="First"), "two": template.format(cls="Second")}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(DuplicateRegistrationError) as err:
            discover([pkg])
    finally:
        for mod in [m for m in sys.modules if m.startswith(pkg)]:
            del sys.modules[mod]
    message = str(err.value)
    assert f"{kind} name" in message
    assert f"{pkg}.one.First" in message and f"{pkg}.two.Second" in message


def test_each_domain_declares_its_queue_once_and_discovery_reports_it_with_its_team() -> None:
    from app.domains.parcel import DOMAIN as PARCEL
    from app.domains.parcel.workflows import ParcelIngestWorkflow
    from app.domains.rate_audit import DOMAIN as RATE_AUDIT
    from app.platform.discovery import discovered_task_queues
    from app.platform.domain import workflow_domain

    assert workflow_domain(ParcelIngestWorkflow) is PARCEL
    queues = discovered_task_queues()
    assert queues == {
        "loadgen": frozenset({"platform"}),
        "parcel": frozenset({"parcel"}),
        "sample": frozenset({"platform"}),
    }
    parcel = discover().queues["parcel"]
    assert set(parcel.domains) == {PARCEL, RATE_AUDIT}
