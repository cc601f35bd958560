import subprocess
import sys
import textwrap

from simsi.core.interface import StableInterface


class Echo(StableInterface):
    async def on_request(self, ctx, payload):
        return payload


def test_cluster_fixture_uses_seed(simsi_cluster, simsi_seed):
    cluster = simsi_cluster(Echo)
    assert cluster.world.seed == simsi_seed
    assert cluster.request("x", 7).value == 7


def test_failing_test_reports_seed(tmp_path):
    test_file = tmp_path / "test_failing.py"
    test_file.write_text(
        textwrap.dedent(
            """
            def test_fails(simsi_seed):
                assert simsi_seed == -1
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(test_file),
            "--simsi-seed",
            "42",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert "simulation seed 42; replay with: pytest" in result.stdout
    assert "--simsi-seed 42" in result.stdout


def test_invalid_env_seed_rejected(tmp_path):
    test_file = tmp_path / "test_seed.py"
    test_file.write_text("def test_seed(simsi_seed):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"SIMSI_SEED": "abc", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode != 0
    assert "SIMSI_SEED must be an integer, got 'abc'" in result.stdout + result.stderr
