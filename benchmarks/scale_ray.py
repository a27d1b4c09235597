"""Claims (issue 16, README "Running on a cluster"): the extract stage on the Ray engine keeps the local engine's
throughput (Ray with 1 worker >= 0.90 of local n_process 1; Ray with 2 workers >= 0.90 of local n_process 2) and
writes the same bytes.

extract: the WebNLG texts (train + dev: 20,370 documents) ingested once; then the extract stage alone, forced,
interleaved --repeat times in each configuration, every configuration in the same session:
  local-1 / local-2 - engine local, params n_process 1 / 2 (spaCy's own multiprocessing);
  ray-1 / ray-2     - engine ray on a simulated two-node cluster (ray.cluster_utils.Cluster, 1 CPU per node,
                      started once, its start excluded), executor workers 1 / 2.
Words/s = the documents' whitespace words / the stage's duration in the lock file (reading documents, loading the
model in each process, extraction, writing both tables). Every run's mentions.parquet and relations.parquet hashes
must equal local-1's. Reports best and median per configuration and the ratios.

fuse on Ray against the local engine is benchmarks/er_scale.py --engine ray (same clusters, wall and CPU time,
driver memory).

Usage: python benchmarks/scale_ray.py [--webnlg ../shared/data/webnlg] [--repeat 5] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import write_section

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"local-1": {"n_process": 1}, "local-2": {"n_process": 2},
           "ray-1": {"workers": 1}, "ray-2": {"workers": 2}}


def start_cluster(temp: Path):
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "temp_dir": str(temp), "object_store_memory": 500 * 2**20})
    cluster.add_node(num_cpus=1, object_store_memory=500 * 2**20)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    return cluster


def write_pipeline(folder: Path, corpus: Path, config: str, address: str) -> Path:
    import yaml

    extract_params = {"n_process": CONFIGS[config].get("n_process", 1)}
    executor = ({"engine": "ray", "address": address, "workers": CONFIGS[config]["workers"]}
                if config.startswith("ray") else {"engine": "local"})
    cfg = {
        "version": 1, "root": str(folder), "artifacts": "artifacts", "workspace": f"ws-{config}",
        "allow_outside": [str(REPO)],
        "stages": {
            "ingest": {"type": "ingest",
                       "deps": {"corpus": str(corpus), "seeds": [str(REPO / "sample_kg/seed_kg.ttl")]},
                       "outs": {"documents": "artifacts/documents.parquet",
                                "seed_entities": "artifacts/seed_entities.parquet",
                                "seed_triples": "artifacts/seed_triples.parquet",
                                "seed_attributes": "artifacts/seed_attributes.parquet",
                                "report": "artifacts/ingest_report.json"}},
            "extract": {"type": "extract", "executor": executor, "params": extract_params,
                        "deps": {"documents": "artifacts/documents.parquet",
                                 "seed_entities": "artifacts/seed_entities.parquet",
                                 "patterns": str(REPO / "pipelines/patterns")},
                        "outs": {"mentions": f"out-{config}/mentions.parquet",
                                 "relations": f"out-{config}/relations.parquet"}},
        },
    }
    path = folder / f"{config}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def webnlg_corpus(webnlg: Path, folder: Path) -> tuple[Path, int, int]:
    from _webnlg import read_webnlg

    texts = [t.text for split in ("train", "dev") for e in read_webnlg(webnlg / split) for t in e.texts]
    corpus = folder / "corpus.jsonl"
    with corpus.open("w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": f"w{i:06d}", "text": text}) + "\n")
    return corpus, len(texts), sum(len(t.split()) for t in texts)


def bench_extract(args: argparse.Namespace, folder: Path, address: str) -> str:
    import kgpipe

    corpus, n_docs, words = webnlg_corpus(Path(args.webnlg), folder)
    pipelines = {c: write_pipeline(folder, corpus, c, address) for c in CONFIGS}
    kgpipe.run(pipelines["local-1"], until="ingest")
    for c in pipelines:  # every workspace's ingest entry, without running it again
        if c != "local-1":
            (folder / f"ws-{c}").mkdir(exist_ok=True)
            (folder / f"ws-{c}/lock.json").write_text((folder / "ws-local-1/lock.json").read_text())
    rates: dict[str, list[float]] = {c: [] for c in CONFIGS}
    hashes: dict[str, set[str]] = {c: set() for c in CONFIGS}
    for round_ in range(args.repeat):
        for config in CONFIGS:
            kgpipe.run(pipelines[config], only="extract", force=True)
            entry = json.loads((folder / f"ws-{config}/lock.json").read_text())["stages"]["extract"]
            rates[config].append(words / entry["duration_s"])
            hashes[config].add(json.dumps(sorted(entry["outs"].values())))
            print(f"round {round_ + 1} {config}: {rates[config][-1]:,.0f} words/s", flush=True)
    reference = hashes["local-1"]
    identical = all(h == reference for h in hashes.values()) and len(reference) == 1
    rows = [f"| {c} | {max(r):,.0f} | {statistics.median(r):,.0f} |" for c, r in rates.items()]

    def ratio(a: str, b: str, f) -> str:
        return f"{f(rates[a]) / f(rates[b]):.2f}"

    return (f"extract: {n_docs:,} WebNLG documents, {words:,} words, {args.repeat} interleaved runs per "
            f"configuration; outputs byte-identical across all runs and engines: {'yes' if identical else 'NO'}.\n\n"
            "| configuration | best words/s | median words/s |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
            f"- ray-1 / local-1: best {ratio('ray-1', 'local-1', max)}, median "
            f"{ratio('ray-1', 'local-1', statistics.median)} (target >= 0.90)\n"
            f"- ray-2 / local-2: best {ratio('ray-2', 'local-2', max)}, median "
            f"{ratio('ray-2', 'local-2', statistics.median)} (target >= 0.90)\n"
            f"- local-2 / local-1: best {ratio('local-2', 'local-1', max)}; ray-2 / ray-1: best "
            f"{ratio('ray-2', 'ray-1', max)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webnlg", default=str(REPO.parent / "shared/data/webnlg"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory(prefix="kgpipe-scale-") as tmp:
        temp = Path("/tmp") / f"kgpipe-bench-ray-{int(time.time())}"
        cluster = start_cluster(temp)
        try:
            body = bench_extract(args, Path(tmp), cluster.address)
        finally:
            ray.shutdown()
            cluster.shutdown()
    command = "python benchmarks/scale_ray.py " + " ".join(sys.argv[1:])
    write_section("scale_ray", "Scale-out: extract on Ray against the local engine", body,
                  command.strip(), print_only=args.no_write)


if __name__ == "__main__":
    main()
