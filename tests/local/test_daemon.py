"""The demo's daemon (``local/daemon.py``): its sensors run against a code server started
beside it, which it reaches over a socket, and stopping it stops both processes."""

from __future__ import annotations

import time

import yaml

from leanops_dagster.instance import get_instance
from leanops_dagster.local.daemon import LOCATION_NAME, start_daemon
from leanops_dagster.settings import Settings


def _sensor_ticked(instance, name: str) -> bool:
    return any(
        state.instigator_name == name
        and instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
        for state in instance.all_instigator_state()
    )


def test_the_daemon_ticks_its_sensors_through_the_code_server_beside_it(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    # start_daemon exports both for its children; set here so they are restored afterwards
    monkeypatch.setenv("LEANOPS_HOME", str(settings.home))
    monkeypatch.setenv("DAGSTER_HOME", str(settings.dagster_home))
    daemon = start_daemon(settings)
    try:
        workspace = yaml.safe_load((settings.dagster_home / "daemon-workspace.yaml").read_text())
        (location,) = workspace["load_from"]
        assert location == {"grpc_server": {
            "socket": str(settings.dagster_home / "code-server.sock"),
            "location_name": LOCATION_NAME}}
        instance = get_instance(settings)
        deadline = time.monotonic() + 180
        while not _sensor_ticked(instance, "raw_snapshot_sensor"):
            assert daemon.poll() is None, "the daemon or its code server exited"
            assert time.monotonic() < deadline, "no tick of raw_snapshot_sensor in 180 s"
            time.sleep(1)
        assert daemon.poll() is None
    finally:
        daemon.stop(timeout_s=60)
    assert daemon.daemon.returncode is not None
    assert daemon.code_server.returncode is not None
