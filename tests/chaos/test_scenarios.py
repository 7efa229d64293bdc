"""Every chaos scenario (run.py) with its fixed seed, in its own network namespace, on a topic
of one replica per partition and on one of three: nothing acknowledged is lost, duplicated or
reordered, and no two readers disagree about an offset."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SEEDS = {"kill_leader": 1, "pause_leader": 1, "kill_all": 1, "partition_leader": 1,
         "kill_coordinator": 1, "transactional_copier": 1,
         "rolling_restart": 1}


@pytest.mark.parametrize("replication_factor", [1, 3])
@pytest.mark.parametrize("scenario", sorted(SEEDS))
def test_scenario_loses_nothing_acknowledged(scenario, replication_factor):
    binary = os.environ.get("SLUICE_BIN", str(HERE.parents[1] / "target" / "debug" / "sluice"))
    done = subprocess.run(
        [sys.executable, str(HERE / "run.py"), scenario, "--seed", str(SEEDS[scenario]),
         "--replication-factor", str(replication_factor), "--binary", binary],
        capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    # librdkafka's own log lines (starting with %) would bury the harness's error.
    errors = "\n".join(line for line in done.stderr.splitlines() if not line.startswith("%"))
    assert lines, f"no result (exit {done.returncode}):\n{errors[-6000:]}"
    result = json.loads(lines[-1])
    print(json.dumps(result))
    assert result["acknowledged"] > 1000, result
    assert result["safe"], result
    if scenario == "rolling_restart" and replication_factor == 3:
        # Leadership moves before each broker stops: the producer only retries.
        assert result["delivery_errors"] == 0, result
    assert done.returncode == 0, errors[-6000:]
