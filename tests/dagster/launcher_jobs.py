"""Jobs for the warm-fork run launcher's tests (tests/dagster/test_launcher.py), preloaded by
its worker: one that succeeds, one whose run process is killed, one that waits (recording when
its step ran, for the overlap and terminate tests)."""

import json
import os
import signal
import time
from pathlib import Path

import dagster as dg


@dg.op
def say_hello(context: dg.OpExecutionContext) -> int:
    context.log.info(f"hello from run process {os.getpid()}")
    return os.getpid()


@dg.job(executor_def=dg.in_process_executor)
def succeeds():
    say_hello()


@dg.op
def kill_own_process() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@dg.job(executor_def=dg.in_process_executor)
def crashes():
    kill_own_process()


@dg.op(config_schema={"seconds": float, "log": str})
def wait_and_record(context: dg.OpExecutionContext) -> None:
    """Appends {run, start, end} to the JSON-lines file ``log``; sleeps ``seconds`` between."""
    start = time.time()
    deadline = start + context.op_config["seconds"]
    while time.time() < deadline:
        time.sleep(0.05)
    line = {
        "run": context.run_id,
        "tags": dict(context.run.tags),
        "start": start,
        "end": time.time(),
    }
    with Path(context.op_config["log"]).open("a") as log:
        log.write(json.dumps(line) + "\n")


@dg.job(executor_def=dg.in_process_executor)
def waits():
    wait_and_record()


defs = dg.Definitions(jobs=[succeeds, crashes, waits])
