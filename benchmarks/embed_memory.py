"""Claim (README, "Running on a cluster"): one PyKEEN training process holds about entities x dim x 16 bytes
(weights, gradients and Adam's two moments, float32) plus a fixed overhead, so the graph size one process (and
so one embed task on a cluster node) can train follows from the node's memory.

Each size runs in a fresh process: build a random graph of N entities, 16 relations and 200,000 triples
(the parameters, not the triples, dominate memory), train
PyKEEN's TransE for one epoch with Adam (batch size pinned), and read the process's peak RSS. The same process
measured after importing PyKEEN and building the graph (no model) is the baseline; the ratio is the measured
growth over the analytic 16 bytes per parameter.

Usage: python benchmarks/embed_memory.py [--entities 100000 1000000 2000000] [--dim 128] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from pykeen.triples import CoreTriplesFactory
n, dim, train = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.manual_seed(0)
rng = np.random.default_rng(0)
m = 200_000
triples = np.stack([rng.integers(0, n, m), rng.integers(0, 16, m), rng.integers(0, n, m)], axis=1)
factory = CoreTriplesFactory.create(mapped_triples=torch.as_tensor(triples, dtype=torch.long),
                                    num_entities=n, num_relations=16)
seconds = 0.0
if train:
    from pykeen.models import TransE
    from pykeen.training import SLCWATrainingLoop
    model = TransE(triples_factory=factory, embedding_dim=dim, random_seed=0)
    loop = SLCWATrainingLoop(model=model, triples_factory=factory,
                             optimizer=torch.optim.Adam(model.parameters(), lr=0.01))
    started = time.perf_counter()
    loop.train(triples_factory=factory, num_epochs=1, batch_size=4096, use_tqdm=False)
    seconds = time.perf_counter() - started
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "seconds": seconds}))
"""


def measure(n: int, dim: int, train: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(dim), "1" if train else "0"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, nargs="+", default=[100_000, 1_000_000, 2_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in args.entities:
        base, trained = measure(n, args.dim, False), measure(n, args.dim, True)
        params = (n + 16) * args.dim
        analytic_mb = params * 16 / 2**20
        growth = trained["peak_mb"] - base["peak_mb"]
        rows.append(f"| {n:,} | {args.dim} | {params:,} | {analytic_mb:,.0f} | {base['peak_mb']:,.0f} | "
                    f"{trained['peak_mb']:,.0f} | {growth:,.0f} | {growth / analytic_mb:.2f} | "
                    f"{trained['seconds']:.1f} |")
        print(rows[-1], flush=True)
    body = ("TransE, one epoch over 200,000 random triples, Adam, batch 4096, CPU float32; peak RSS of a fresh "
            "process.\n\n"
            "| entities | dim | parameters | 16 B/param (MB) | baseline peak (MB) | training peak (MB) | "
            "growth (MB) | growth / analytic | epoch (s) |\n|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")
    command = "python benchmarks/embed_memory.py " + " ".join(sys.argv[1:])
    write_section("embed_memory", "One PyKEEN process: memory per entity", body, command.strip(),
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
