"""Load tests measured in billable actions: the Locust-independent half of `haul loadtest`.

The Locust users live in the repository's `loadtest/` directory and run in their own
processes (Locust patches the interpreter with gevent); everything the `haul` CLI imports
(scenario table, action accounting, reports, SLO gates, the bare-asyncio ceiling driver) lives
here and never imports Locust.
"""
