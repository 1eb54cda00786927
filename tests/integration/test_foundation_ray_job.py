"""A real Ray head (`ray start --head` on 127.0.0.1 in a temp dir), a job submitted with
`ray job submit --working-dir . -- raypipe run ...`, waited for until SUCCEEDED, its output
checked, and the head stopped.

The head is stopped by killing the processes that use its temp dir (never `ray stop`, which
would stop every Ray instance on a shared machine).
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _pids_using(path: str) -> list[int]:
    """Processes whose command line, working dir or open files mention `path`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        base = f"/proc/{entry}"
        try:
            cmdline = Path(base, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            uses = path in cmdline or path in os.readlink(f"{base}/cwd")
            if not uses:
                uses = any(path in os.readlink(f"{base}/fd/{fd}") for fd in os.listdir(f"{base}/fd"))
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            continue
        if uses:
            pids.append(int(entry))
    return pids


def _stop_head(temp_dir: str) -> None:
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        pids = _pids_using(temp_dir)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids:
            time.sleep(wait)


@pytest.fixture
def ray_head():
    if not shutil.which(RAY):
        pytest.skip("the ray CLI is not installed")
    # Short path: Ray's unix sockets live under the temp dir (108-byte limit).
    temp_dir = tempfile.mkdtemp(prefix="rpt", dir="/tmp")
    gcs_port, dashboard_port, agent_port = _free_ports(3)
    env = {
        **os.environ,
        # Token auth, with a token of our own: never read or write ~/.ray/auth_token.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        # The job's entrypoint is the `raypipe` console script of this environment.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env.pop("RAY_ADDRESS", None)
    started = subprocess.run(
        [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs_port),
         "--temp-dir", temp_dir, "--num-cpus", "2", "--object-store-memory", str(200 * 1024 * 1024),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
         # Agents of other local Ray instances may hold the default agent port (52365).
         "--dashboard-agent-listen-port", str(agent_port), "--disable-usage-stats"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"address": f"http://127.0.0.1:{dashboard_port}", "env": env, "temp_dir": temp_dir}
    finally:
        _stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not _pids_using(temp_dir)


def _submit_and_wait(head: dict, submission_id: str, *entrypoint: str) -> str:
    """`ray job submit` (tails the job's logs until it ends), retrying while the head's job
    agent is still starting. Returns the output; fails unless the job SUCCEEDED."""
    deadline = time.monotonic() + 90
    while True:
        out = subprocess.run(
            [RAY, "job", "submit", "--address", head["address"], "--submission-id", submission_id,
             "--working-dir", ".", "--", *entrypoint],
            cwd=REPO, env=head["env"], capture_output=True, text=True, timeout=400,
        )
        text = out.stdout + out.stderr
        if "No available agent" in text and time.monotonic() < deadline:
            time.sleep(3)
            continue
        assert out.returncode == 0 and f"Job '{submission_id}' succeeded" in text, text[-6000:]
        return text


def test_ray_job_submit_runs_a_raypipe_job(ray_head, tmp_path):
    out = tmp_path / "converted"
    job = tmp_path / "job.yaml"
    # Inputs are relative to the uploaded working dir; the output is an absolute path on this machine.
    job.write_text(
        "name: submit-test\n"
        "steps:\n"
        f"  - convert: {{out: {out}, sources: [{{format: xlam, inputs: [raypipe/data/sources/xlam.json]}},"
        " {format: glaive, inputs: [raypipe/data/sources/glaive_v2.json]}]}\n"
    )
    submission_id = f"raypipe-test-{secrets.token_hex(4)}"
    logs = _submit_and_wait(ray_head, submission_id, "raypipe", "run", str(job))

    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"in": 16, "out": 16, "rejected": 0}
    assert "[raypipe] joined the Ray cluster at" in logs  # the driver joined the head, not a local Ray
    assert "[raypipe] job 'submit-test' finished" in logs

    # The uploaded working dir holds the code and data but none of the git-ignored folders.
    packages = [p for p in Path(ray_head["temp_dir"]).glob("session_*/runtime_resources/working_dir_files/_ray_pkg_*")
                if p.is_dir()]
    assert packages, "working dir package not found"
    uploaded = {p.name for p in packages[0].iterdir()}
    assert {"raypipe", "jobs", "pyproject.toml"} <= uploaded
    assert not uploaded & {".venv", "runs", ".git", "raypipe.egg-info"}
    size = sum(f.stat().st_size for f in packages[0].rglob("*") if f.is_file())
    assert size < 20 * 1024 * 1024, f"uploaded working dir is {size / 1e6:.1f} MB"
