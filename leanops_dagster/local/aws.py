"""moto in server mode on a loopback port: the local SQS and S3 endpoint.

The boto3 code talking to it is the code that talks to AWS; only ``endpoint_url`` differs.
moto accepts any credentials, so clients get fixed dummy ones and never look for real ones.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config

log = logging.getLogger(__name__)

LOCAL_ACCESS_KEY = "leanops-local"  # moto ignores credentials; these are not secrets
LOCAL_SECRET_KEY = "leanops-local"  # nosec B105 - dummy value for the moto endpoint


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoEndpoint:
    """moto's server on 127.0.0.1 and a free port, in a thread (default) or a subprocess.

    ``mode="process"`` runs ``python -m moto.server`` so moto does not share this process's
    GIL with the pollers and the Iceberg writer (faster on two cores; same behaviour).
    """

    def __init__(self, mode: str = "thread") -> None:
        if mode not in ("thread", "process"):
            raise ValueError(f"moto mode must be 'thread' or 'process', not {mode!r}")
        self.mode = mode
        self._server = None
        self._process: subprocess.Popen | None = None
        self.url: str | None = None

    def start(self) -> str:
        if self.mode == "thread":
            from moto.server import ThreadedMotoServer

            patch_moto()
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
        else:
            host, port = "127.0.0.1", _free_port()
            self._process = subprocess.Popen(  # nosec B603 - fixed argv, our own interpreter
                [sys.executable, "-m", "leanops_dagster.local.aws", host, str(port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            _wait_for_port(host, port, self._process)
        self.url = f"http://{host}:{port}"
        log.info("moto listening on %s (%s)", self.url, self.mode)
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None


def patch_moto() -> None:
    """Make moto's per-message retention check O(1) (idempotent; behaviour unchanged).

    moto 5 checks the retention period of every message it returns by computing *all* queue
    attributes, each a scan of the whole queue, so receiving from a queue of n messages costs
    O(n) per message and a 5,000-message backlog takes many minutes to drain. The replacement
    reads the same attribute directly.
    """
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_leanops_patched", False):
        return

    def is_message_valid_based_on_retention_period(self, queue_name: str, message) -> bool:
        retention_s = int(self.get_queue(queue_name).message_retention_period)
        return retention_s + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )
    SQSBackend._leanops_patched = True  # type: ignore[attr-defined]


def _serve(host: str, port: int) -> None:
    """``python -m leanops_dagster.local.aws HOST PORT``: the patched moto server, foreground."""
    from moto.server import ThreadedMotoServer

    patch_moto()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    threading.Event().wait()


def _wait_for_port(host: str, port: int, process: subprocess.Popen, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"moto server did not listen on {host}:{port} within {timeout_s}s")


def client(service: str, endpoint_url: str | None, region: str, **config: object):
    """A boto3 client for ``service`` at ``endpoint_url`` (moto locally, AWS when None)."""
    kwargs: dict[str, object] = {
        "region_name": region,
        "config": Config(
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=int(config.pop("max_pool_connections", 20)),  # type: ignore[arg-type]
            **config,
        ),
    }
    if endpoint_url is not None:
        kwargs.update(
            endpoint_url=endpoint_url, aws_access_key_id=LOCAL_ACCESS_KEY,
            aws_secret_access_key=LOCAL_SECRET_KEY,
        )
    return boto3.session.Session().client(service, **kwargs)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
