"""Load tests measured in billable actions: one package, shipped in the wheel.

Two halves that meet only through typed files and variables. The parent `haul loadtest`
process (runner, scenarios, settings, models, accounting, report, ceiling, cost) never imports
Locust, which patches the interpreter with gevent. The Locust processes load locustfile.py
(with users.py, distributed.py and, for capacity runs, shapes.py) and read their settings from
the same `LoadSettings` model the parent writes; they leave `ProcessStats` files that the
parent reads back into the `RunReport`.
"""
