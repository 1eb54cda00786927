import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BFCL_DATA = SHARED / "benchmarks" / "bfcl-zhtw" / "data"

# DeepSpeed must not look for CUDA on CPU machines; set before anything imports it.
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture
def bfcl_data() -> Path:
    if not BFCL_DATA.exists():
        pytest.skip(f"BFCL zh-TW benchmark data not found at {BFCL_DATA} (shared/ is absent)")
    return BFCL_DATA


@pytest.fixture(scope="session")
def local_ray():
    """One small in-process Ray for the whole session (2 cores, small object store)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=300 * 1024 * 1024,
            log_to_driver=False,
        )
    yield ray


@pytest.fixture
def ray_cluster():
    """`ray_cluster(worker_nodes=1, head_cpus=1, worker_cpus=1, env={...})` starts a real
    multi-node Ray cluster on 127.0.0.1 (tests/cluster.py); everything it started is killed
    after the test (never `ray stop`)."""
    from cluster import RAY, LocalCluster

    import shutil

    if not shutil.which(RAY):
        pytest.skip("the ray CLI is not installed")
    made = []

    def make(**kwargs):
        cluster = LocalCluster(**kwargs)
        made.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in made:
        cluster.stop()
    for cluster in made:
        assert not cluster.leftover_pids(), "processes of the test cluster survived stop()"


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz-examples", type=int, default=None,
        help="examples per fuzz test (tests/fuzz); default 200, fixed seed (CI). Any number given "
        "here runs with fresh random seeds, for long runs hunting new bugs",
    )
