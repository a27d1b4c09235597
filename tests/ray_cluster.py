"""One simulated two-node Ray cluster per test session (ray.cluster_utils.Cluster: a head and a worker node
of one CPU each, dashboard off), for every test that runs something on the Ray engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class RayCluster:
    address: str     # what `executor: {address: ...}` and `kgpipe run --address` take
    nodes: int
    cpus: int
    temp_dir: Path   # Ray's own session folder (logs, spill files), outside every test's project


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray", reason="the Ray engine's tests need `pip install kgpipe[ray]`")
    from ray.cluster_utils import Cluster

    # Ray's socket paths must stay short (107 bytes on Linux), so its temp folder is not pytest's deep tmp path
    temp_dir = Path("/tmp") / f"kgpipe-ray-{os.getpid()}"
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "temp_dir": str(temp_dir),
        "object_store_memory": 200 * 1024 * 1024})
    cluster.add_node(num_cpus=1, object_store_memory=200 * 1024 * 1024)
    cluster.wait_for_nodes()
    try:
        yield RayCluster(cluster.address, nodes=2, cpus=2, temp_dir=temp_dir)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
