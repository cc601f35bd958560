"""The same scenario and seed give the same trace digest in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from simsi.sim.scenario import load_scenario
from simsi.sim.world import run_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def digest_in_subprocess(scenario: Path, seed: int, hash_seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "simsi.cli",
            "--log-level",
            "WARNING",
            "sim",
            str(scenario),
            "--seed",
            str(seed),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return str(json.loads(completed.stdout)["digest"])


def test_digest_same_across_hash_seeds() -> None:
    scenario = SCENARIOS / "deployment-surge-duplicate-identity.toml"

    first = digest_in_subprocess(scenario, 5, "1")
    second = digest_in_subprocess(scenario, 5, "4242")

    assert first == second
    assert first == run_scenario(load_scenario(scenario), seed=5).digest


def test_quickstart_digest_same_across_hash_seeds() -> None:
    scenario = SCENARIOS / "quickstart.toml"

    assert digest_in_subprocess(scenario, 0, "0") == digest_in_subprocess(scenario, 0, "random")


def test_random_fault_mix_digest_same_across_hash_seeds() -> None:
    # Drawn faults, network rules and restarts all take their randomness from the seed.
    scenario = SCENARIOS / "random-fault-mix.toml"

    assert digest_in_subprocess(scenario, 3, "7") == digest_in_subprocess(scenario, 3, "99")
