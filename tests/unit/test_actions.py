from app.platform.actions import delta, parse_actions

PAGE = """\
# HELP action_total
# TYPE action_total counter
action_total{action_type="grpc_StartWorkflowExecution",namespace="haul",service_name="frontend"} 3
action_total{action_type="command_ScheduleActivityTask",namespace="haul",service_name="frontend"} 5
action_total{action_type="command_ScheduleActivityTask",namespace="haul",service_name="history"} 7
action_total{action_type="grpc_StartWorkflowExecution",namespace="other",service_name="frontend"} 11
# HELP unrelated_total
# TYPE unrelated_total counter
unrelated_total{namespace="haul"} 13
"""


def test_parse_keeps_only_the_namespace_and_frontend() -> None:
    counts = parse_actions(PAGE, "haul")
    assert counts == {"grpc_StartWorkflowExecution": 3, "command_ScheduleActivityTask": 5}


def test_tally_style_name_without_total_suffix() -> None:
    page = '# TYPE action counter\naction{action_type="command_StartTimer",namespace="haul"} 2\n'
    assert parse_actions(page, "haul") == {"command_StartTimer": 2}


def test_delta_drops_unchanged_types() -> None:
    before = {"a": 1.0, "b": 2.0}
    after = {"a": 4.0, "b": 2.0, "c": 1.0}
    assert delta(before, after) == {"a": 3, "c": 1}
