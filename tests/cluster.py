"""A real multi-node Ray cluster on 127.0.0.1 for integration tests (never imported by raypipe).

    with LocalCluster(worker_nodes=1, env={"MY_KEY": "sk-test"}) as cluster:
        job = cluster.submit("raypipe", "run", "job.yaml")   # `ray job submit --working-dir .`
        cluster.kill_raylet(cluster.workers[0])              # kill -9 that node's raylet
        logs = job.wait()                                    # fails unless the job SUCCEEDED
        # (job.running(), job.stop(): `ray job stop`)

`ray start --head` plus one `ray start --address` per worker node, each node with its own
`--temp-dir`, free ports and `cpus` CPUs (1 by default). `env` reaches every Ray process, so
job drivers and workers read API keys from it (never pass keys in a job's runtime env).
`stop()` (or leaving the `with`) kills exactly the processes that use the cluster's temp dirs
and its own `ray job submit` commands: never `ray stop`, which would stop every engineer's
Ray on a shared machine. The head's failure detection is shortened (a lost node is declared
dead in a few seconds instead of about 30), so node-loss tests stay short.

The `ray_cluster` fixture in tests/conftest.py builds one per test.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def pids_using(path: str) -> list[int]:
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


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def kill_processes_using(path: str) -> None:
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        pids = pids_using(path)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids:
            time.sleep(wait)


@dataclass
class Node:
    name: str
    temp_dir: str
    cpus: float
    node_manager_port: int
    raylet_pid: int | None = None  # set by kill_raylet


@dataclass
class Job:
    """A `ray job submit` running in the background (it tails the job's logs until the end)."""

    submission_id: str
    proc: subprocess.Popen
    log_path: Path
    cluster: "LocalCluster" = field(repr=False)

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """`ray job stop` (the driver and the job's actors end), then wait for the submit."""
        subprocess.run([RAY, "job", "stop", "--address", self.cluster.dashboard_url, self.submission_id],
                       env=self.cluster.env, capture_output=True, text=True, timeout=120)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def wait(self, timeout: float = 600, succeed: bool = True) -> str:
        """The job's output (the tailed driver logs). With `succeed`, fails unless the job
        SUCCEEDED."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"job {self.submission_id} still running after {timeout}s:\n"
                                 + self.log_path.read_text(errors="replace")[-6000:]) from None
        text = self.log_path.read_text(errors="replace")
        if succeed:
            assert self.proc.returncode == 0 and f"Job '{self.submission_id}' succeeded" in text, text[-6000:]
        return text


class LocalCluster:
    def __init__(self, worker_nodes: int = 1, head_cpus: float = 1, worker_cpus: float = 1,
                 env: dict[str, str] | None = None, object_store_mb: int = 150,
                 node_dead_after_s: float = 3.0):
        self.worker_nodes = worker_nodes
        self.head_cpus, self.worker_cpus = head_cpus, worker_cpus
        self.object_store_mb = object_store_mb
        self.root = tempfile.mkdtemp(prefix="rpc", dir="/tmp")  # short: unix sockets live here
        period_ms = 500
        self.env = {
            **os.environ,
            **(env or {}),
            # Token auth with a token of our own: never read or write ~/.ray/auth_token.
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_health_check_initial_delay_ms": "1000",
            "RAY_health_check_period_ms": str(period_ms),
            "RAY_health_check_timeout_ms": str(period_ms),
            "RAY_health_check_failure_threshold": str(max(1, int(node_dead_after_s * 1000 / period_ms))),
            # The job's entrypoint is the `raypipe` console script of this environment.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        self.env.pop("RAY_ADDRESS", None)
        self.head: Node | None = None
        self.workers: list[Node] = []
        self.gcs_address = ""
        self.dashboard_url = ""
        self._jobs: list[Job] = []

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if not shutil.which(RAY):
            raise RuntimeError("the ray CLI is not installed")
        gcs, dashboard, client = free_ports(3)
        self.gcs_address = f"127.0.0.1:{gcs}"
        self.dashboard_url = f"http://127.0.0.1:{dashboard}"
        self.head = self._start_node(
            "head", self.head_cpus,
            ["--head", "--port", str(gcs), "--dashboard-host", "127.0.0.1",
             "--dashboard-port", str(dashboard), "--ray-client-server-port", str(client)])
        for i in range(self.worker_nodes):
            self.workers.append(self._start_node(f"worker{i}", self.worker_cpus,
                                                 ["--address", self.gcs_address]))

    def _start_node(self, name: str, cpus: float, extra: list[str]) -> Node:
        temp_dir = os.path.join(self.root, name[:2] + name[-1])
        os.makedirs(temp_dir)
        node_manager, object_manager, agent, agent_grpc, runtime_env, metrics = free_ports(6)
        args = [
            RAY, "start", *extra, "--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir,
            "--num-cpus", str(cpus), "--object-store-memory", str(self.object_store_mb * 1024 * 1024),
            "--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager),
            # Other local Ray instances may hold the default agent ports (52365, ...).
            "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
            "--runtime-env-agent-port", str(runtime_env), "--metrics-export-port", str(metrics),
            "--disable-usage-stats",
        ]
        started = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=240)
        if started.returncode != 0:
            raise RuntimeError(f"ray start ({name}) failed:\n{started.stdout}\n{started.stderr}")
        return Node(name=name, temp_dir=temp_dir, cpus=cpus, node_manager_port=node_manager)

    def stop(self) -> None:
        for job in self._jobs:
            if job.proc.poll() is None:
                job.proc.kill()
                job.proc.wait(timeout=10)
        for node in [*self.workers, *([self.head] if self.head else [])]:
            kill_processes_using(node.temp_dir)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftover_pids(self) -> list[int]:
        return pids_using(self.root)

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, *entrypoint: str, submission_id: str | None = None,
               working_dir: Path = REPO) -> Job:
        """`ray job submit --working-dir <repo> -- entrypoint...`, in the background."""
        submission_id = submission_id or f"raypipe-test-{secrets.token_hex(4)}"
        log_path = Path(self.root) / f"{submission_id}.log"
        script = (
            # Retry while the head's job agent is still starting ("No available agent").
            'for i in $(seq 30); do "$@" >"$LOG" 2>&1; rc=$?; '
            'grep -q "No available agent" "$LOG" || exit $rc; sleep 3; done; exit $rc'
        )
        proc = subprocess.Popen(
            ["bash", "-c", script, "submit",
             RAY, "job", "submit", "--address", self.dashboard_url, "--submission-id", submission_id,
             "--working-dir", str(working_dir), "--", *entrypoint],
            cwd=working_dir, env={**self.env, "LOG": str(log_path)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        job = Job(submission_id, proc, log_path, self)
        self._jobs.append(job)
        return job

    def run_job(self, *entrypoint: str, timeout: float = 600) -> str:
        return self.submit(*entrypoint).wait(timeout=timeout)

    # -- faults -----------------------------------------------------------------------------
    def raylet_pid(self, node: Node) -> int:
        for pid in pids_using(node.temp_dir):
            cmd = _cmdline(pid)
            if "/raylet" in cmd.split(" ", 1)[0] and f"--node_manager_port={node.node_manager_port}" in cmd:
                return pid
        raise RuntimeError(f"no raylet found for node {node.name}")

    def kill_raylet(self, node: Node) -> int:
        """kill -9 the node's raylet (its workers die with it: the node is lost)."""
        pid = self.raylet_pid(node)
        os.kill(pid, signal.SIGKILL)
        node.raylet_pid = pid
        return pid
