"""Claims (issue 16, README "Running on a cluster"): the extract stage on the Ray engine keeps the local engine's
throughput (Ray with 1 worker >= 0.90 of local n_process 1; Ray with 2 workers >= 0.90 of local n_process 2) and
writes the same bytes.

extract: the WebNLG texts (train + dev: 20,370 documents) ingested once; then the extract stage alone, forced,
interleaved --repeat times in each configuration, every configuration in the same session:
  local-1 / local-2 - engine local, params n_process 1 / 2 (in this process / two worker processes);
  ray-1 / ray-2     - engine ray on a simulated two-node cluster (ray.cluster_utils.Cluster, 1 CPU per node,
                      started once, its start excluded), executor workers 1 / 2.
Words/s = the documents' whitespace words / the stage's duration in the lock file (reading documents, loading the
model in each process, extraction, writing both tables). Every run's mentions.parquet and relations.parquet hashes
must equal local-1's. Reports best and median per configuration and the ratios.

fuse on Ray against the local engine is benchmarks/er_scale.py --engine ray (same clusters, wall and CPU time,
driver memory).

--estimate: a scaling table instead, an ESTIMATE for 10 and 100 workers from one ray-1 and one ray-2 run on the
first --docs documents (default all): the per-worker rate (ray-1), the efficiency of two workers (ray-2 over twice
ray-1), the driver's CPU seconds (it reads the documents, cuts them into ranges, receives the results and writes
both tables, serially), and the bytes that travel: document text to the workers, Arrow results back.

Usage: python benchmarks/scale_ray.py [--webnlg ../shared/data/webnlg] [--repeat 5] [--no-write]
       python benchmarks/scale_ray.py --estimate [--docs N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
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


def webnlg_corpus(webnlg: Path, folder: Path, limit: int | None = None) -> tuple[Path, int, int]:
    from _webnlg import read_webnlg

    texts = [t.text for split in ("train", "dev") for e in read_webnlg(webnlg / split) for t in e.texts][:limit]
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


def bench_estimate(args: argparse.Namespace, folder: Path, address: str) -> str:
    """One ray-1 and one ray-2 run on the first --docs documents, and the scaling table estimated from them."""
    import pyarrow.parquet as pq

    import kgpipe

    corpus, n_docs, words = webnlg_corpus(Path(args.webnlg), folder, args.docs)
    text_bytes = sum(len(json.loads(line)["text"].encode()) for line in corpus.read_text().splitlines())
    configs = ("ray-1", "ray-2")
    pipelines = {c: write_pipeline(folder, corpus, c, address) for c in configs}
    kgpipe.run(pipelines["ray-1"], until="ingest")
    (folder / "ws-ray-2").mkdir(exist_ok=True)
    (folder / "ws-ray-2/lock.json").write_text((folder / "ws-ray-1/lock.json").read_text())
    rate, driver = {}, {}
    load = os.getloadavg()[0]
    for config in configs:
        cpu = time.process_time()
        kgpipe.run(pipelines[config], only="extract", force=True)
        driver[config] = time.process_time() - cpu
        entry = json.loads((folder / f"ws-{config}/lock.json").read_text())["stages"]["extract"]
        rate[config] = words / entry["duration_s"]
        print(f"{config}: {rate[config]:,.0f} words/s, driver CPU {driver[config]:.1f} s", flush=True)
    result_bytes = sum(pq.read_table(folder / f"out-ray-2/{name}.parquet").nbytes for name in ("mentions", "relations"))
    per_worker = rate["ray-1"]
    efficiency = rate["ray-2"] / (2 * per_worker)
    driver_limit = words / driver["ray-2"]  # words/s the driver's serial work allows
    rows = []
    for workers in (1, 2, 10, 100):
        estimate = min(workers * per_worker * (1.0 if workers == 1 else efficiency), driver_limit)
        measured = f"{rate['ray-1']:,.0f}" if workers == 1 else f"{rate['ray-2']:,.0f}" if workers == 2 else "-"
        rows.append(f"| {workers} | {measured} | {estimate:,.0f} | "
                    f"{'driver' if estimate >= driver_limit else 'workers'} |")
    return (f"An ESTIMATE, from one ray-1 and one ray-2 run of the extract stage on the first {n_docs:,} WebNLG "
            f"documents ({words:,} words) on the simulated two-node cluster: per-worker rate {per_worker:,.0f} "
            f"words/s (ray-1), two-worker efficiency {efficiency:.2f} (ray-2 / 2 x ray-1), the driver's CPU "
            f"{driver['ray-2']:.1f} s for the run (reading, ranges, receiving and writing: serial), so the driver "
            f"alone allows {driver_limit:,.0f} words/s. Estimate(W) = min(W x rate x efficiency, driver limit); "
            "model loading per worker, stragglers and network time are left out, so it is an upper bound on "
            f"throughput. The machine's 1-minute load average before the runs: {load:.1f} (2 cores).\n\n"
            f"Data moved per word: {text_bytes / words:.1f} bytes of text to the workers and "
            f"{result_bytes / words:.1f} bytes of Arrow results back ({text_bytes / 1e6:.1f} MB and "
            f"{result_bytes / 1e6:.1f} MB here); at the driver limit that is "
            f"{driver_limit * (text_bytes + result_bytes) / words / 1e6:.1f} "
            "MB/s through the driver.\n\n"
            "| workers | measured words/s | estimated words/s | bound by |\n|---|---|---|---|\n" + "\n".join(rows)
            + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webnlg", default=str(REPO.parent / "shared/data/webnlg"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--estimate", action="store_true", help="the scaling estimate (see above)")
    parser.add_argument("--docs", type=int, default=None, help="documents for --estimate (default: all)")
    args = parser.parse_args()
    if not (Path(args.webnlg) / "train").is_dir():
        parser.error(f"--webnlg {args.webnlg}: no train/ folder there (the WebNLG folder of ../shared/data)")
    import ray

    with tempfile.TemporaryDirectory(prefix="kgpipe-scale-") as tmp:
        temp = Path("/tmp") / f"kgpipe-bench-ray-{int(time.time())}"
        cluster = start_cluster(temp)
        try:
            body = (bench_estimate if args.estimate else bench_extract)(args, Path(tmp), cluster.address)
        finally:
            ray.shutdown()
            cluster.shutdown()
    command = "python benchmarks/scale_ray.py " + " ".join(sys.argv[1:])
    if args.estimate:
        write_section("scale_estimate", "Scale-out: extract at 10 and 100 workers (estimate)", body, command.strip(),
                      print_only=args.no_write)
        return
    write_section("scale_ray", "Scale-out: extract on Ray against the local engine", body,
                  command.strip(), print_only=args.no_write)


if __name__ == "__main__":
    main()
