"""The local Dagster daemon with a code server of its own that stays up (demo, benchmarks).

``dagster-daemon run -w workspace.yaml`` with a ``python_module`` location manages its own code
server and replaces it every 60 s (Dagster's workspace reload): each minute a new interpreter
imports Dagster and the definitions while the sensors wait for it (a few CPU-seconds per minute
on the 2-core laptop, and ticks of 10 s and more with 50 busy topics). Here the code server is
started once with ``dagster code-server start`` on a Unix socket under ``DAGSTER_HOME``, and the
daemon's workspace (``$DAGSTER_HOME/daemon-workspace.yaml``) points at it as a ``grpc_server``, so
the minute reload is a reconnect. ``dagster dev`` (``leanops dev``) manages its code server the
same way; the AWS deployment runs the code location as its own service.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

from leanops_dagster.settings import REPO_ROOT, Settings

#: the code location of the laptop (workspace.yaml, pyproject's [tool.dg])
LOCAL_DEFINITIONS_MODULE = "leanops_dagster.local.definitions"
LOCATION_NAME = "leanops"
CODE_SERVER_START_TIMEOUT_S = 300


class LocalDaemon:
    """The daemon and its code server, watched (``poll``) and stopped (``stop``) together."""

    def __init__(self, code_server: subprocess.Popen, daemon: subprocess.Popen) -> None:
        self.code_server = code_server
        self.daemon = daemon

    def poll(self) -> int | None:
        """The exit code of whichever of the two has exited, else ``None``."""
        for process in (self.daemon, self.code_server):
            if (code := process.poll()) is not None:
                return code
        return None

    def stop(self, timeout_s: float = 30) -> None:
        """Terminate both, then kill whichever is still running after ``timeout_s``."""
        processes = (self.daemon, self.code_server)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _wait_until_serving(socket: Path, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the code server exited with code {server.returncode} "
                               f"(see {socket.parent / 'code-server.log'})")
        if socket.exists() and subprocess.run(  # nosec B603 - fixed argv, our own interpreter
            [_tool("dagster"), "api", "grpc-health-check", "--socket", str(socket)],
            capture_output=True, check=False,
        ).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the code server did not serve within {timeout_s:.0f} s")
        time.sleep(0.5)


def start_daemon(settings: Settings) -> LocalDaemon:
    """Start the code server, wait until it serves, then the daemon against it. Logs go to
    ``code-server.log`` and ``daemon.log`` under ``DAGSTER_HOME``."""
    from leanops_dagster.instance import get_instance

    get_instance(settings)  # storages created here, before the daemon opens them too
    home = settings.dagster_home
    socket = home / "code-server.sock"
    socket.unlink(missing_ok=True)
    server = subprocess.Popen(  # nosec B603 - fixed argv, our own interpreter
        [_tool("dagster"), "code-server", "start", "--socket", str(socket),
         "--module-name", LOCAL_DEFINITIONS_MODULE, "--location-name", LOCATION_NAME],
        stdout=(home / "code-server.log").open("ab"), stderr=subprocess.STDOUT, cwd=REPO_ROOT,
    )
    try:
        _wait_until_serving(socket, server, CODE_SERVER_START_TIMEOUT_S)
    except BaseException:
        server.kill()
        raise
    workspace = home / "daemon-workspace.yaml"
    workspace.write_text(
        "# Written by leanops (local/daemon.py): the daemon's code location is the code server\n"
        "# started beside it, so the daemon's minute reload is a reconnect, not a new server.\n"
        f"load_from:\n  - grpc_server:\n      socket: {socket}\n"
        f"      location_name: {LOCATION_NAME}\n"
    )
    daemon = subprocess.Popen(  # nosec B603 - fixed argv, our own interpreter
        [_tool("dagster-daemon"), "run", "-w", str(workspace)],
        stdout=(home / "daemon.log").open("ab"), stderr=subprocess.STDOUT, cwd=REPO_ROOT,
    )
    return LocalDaemon(server, daemon)
