"""How the suite runs in parallel (``pytest-xdist``; ``addopts`` in pyproject.toml).

Every test is independent (its own ``tmp_path`` home, catalog and topics, no fixed port), so
xdist's workers take them one by one, except tests that share an expensive fixture: those
form one group (``xdist_group``, ``--dist loadgroup``) and run on one worker, so the fixture
is made once, as in a serial run:

- the SparkSession (``tests/spark/conftest.py``: one JVM per process): the Spark tests in one
  group, the foreign-writer scenarios (each needs the session for the foreign writer) in one
  group per engine, so at most three workers start a JVM; each of the two maintenance workers
  makes the scenarios' uninterrupted twin (the Arrow engine's run, seconds) once;
- a module-scoped fixture of the suite (the local stack, a Dagster instance with its warm
  worker, a built artifact, a terraform init, a checkov scan): its module is one group.

xdist sends the largest groups first (``--loadscope-reorder``, its default), then the single
tests fill the workers up.
"""

from __future__ import annotations

import pytest

#: the suite's session-scoped fixtures that start something heavy, and the group of their users
SESSION_GROUPS = {"spark": "spark"}


def _group(item: pytest.Item) -> str | None:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    used = {name: info.name2fixturedefs[name][-1]  # the definition that applies here
            for name in item.fixturenames if info.name2fixturedefs.get(name)}
    if "tests/maintenance/" in item.nodeid:
        # one group per engine (two workers, each with the SparkSession the foreign writer
        # needs): the Spark scenarios alone are as long as the Spark tests' group
        engine = getattr(getattr(item, "callspec", None), "params", {}).get("engine", "")
        return f"maintenance-{engine}"
    for name, group in SESSION_GROUPS.items():
        if name in used and used[name].scope == "session":
            return group
    for definition in used.values():
        # the suite's own module-scoped fixtures (pytest's and plugins' have no baseid)
        if definition.scope == "module" and definition.baseid:
            return item.nodeid.split("::", 1)[0]
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = _group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
