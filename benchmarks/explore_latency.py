"""Claim: `kgpipe explore` answers search and entity pages with p95 < 200 ms, on the sample graph and on a
synthetic graph of 100k entities / 1M triples (artifacts generated directly, with an untrained ComplEx model of
the right shape), at a small multiple of what the plain libraries cost for the same look-up.

Measured, each through FastAPI's TestClient (the app's whole stack but the socket):
  start-up   - in a fresh process: import, create_app, the first /api/status, the first search (builds the
               index) and the first entity page (groups the triples); wall time and peak RSS;
  search     - /api/search for labels as written, with a typo (one letter dropped) and as a prefix;
               plain: rapidfuzz.process.extract(q, labels, scorer=WRatio, limit=20) over the same labels;
  entity     - the /entity/{id} HTML page (50 triples a page each way, evidence, neighbours) and the
               /api/entity/{id}/triples JSON; plain: the pandas filters triples[head == id], triples[tail == id]
               and the entity's row;
  SPARQL     - apart: rdflib's parse of graph.ttl (--sparql-triples of the synthetic triples) and one SELECT.
Reports median and p95 in ms and the ratio explorer / plain.

Usage: python benchmarks/explore_latency.py [--entities 100000] [--triples 1000000] [--sample PIPELINE]
       [--queries 200] [--sparql-triples 100000] [--folder DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO))
from _report import write_section  # noqa: E402

STARTUP = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from fastapi.testclient import TestClient
from kgpipe.web.app import create_app
client = TestClient(create_app(sys.argv[1]), base_url="http://127.0.0.1:8765")
t1 = time.perf_counter()
client.get("/api/status").raise_for_status()
t2 = time.perf_counter()
hit = client.get("/api/search", params={"q": sys.argv[2]}).json()["results"][0]["id"]
t3 = time.perf_counter()
from urllib.parse import quote
client.get("/entity/" + quote(hit, safe="")).raise_for_status()
t4 = time.perf_counter()
print(json.dumps({"app": t1 - t0, "status": t2 - t1, "first_search": t3 - t2, "first_entity": t4 - t3,
                  "total": t4 - t0, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def timed(calls: list[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def startup(pipeline: Path, query: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", STARTUP, str(pipeline), query], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def typo(label: str, rng: random.Random) -> str:
    if len(label) < 5:
        return label
    i = rng.randrange(1, len(label) - 1)
    return label[:i] + label[i + 1:]


def measure(name: str, pipeline: Path, queries: int, rng: random.Random) -> list[str]:
    """Rows of the results table for one graph."""
    from fastapi.testclient import TestClient
    from rapidfuzz import fuzz, process

    from kgpipe.web.app import create_app

    labels_sample_size = queries
    app = create_app(pipeline)
    client = TestClient(app, base_url="http://127.0.0.1:8765")
    snap = app.state.store.current()
    entities, triples = snap.entities, snap.triples
    first = str(entities["label"].iat[0])
    boot = startup(pipeline, first)
    client.get("/api/search", params={"q": first})   # warm: the index, as after the first request
    picks = [int(i) for i in rng.sample(range(len(entities)), min(labels_sample_size, len(entities)))]
    labels = [str(entities["label"].iat[i]) for i in picks]
    qs = labels[: queries // 3] + [typo(x, rng) for x in labels[queries // 3: 2 * queries // 3]] + \
        [x[: max(3, len(x) // 2)] for x in labels[2 * queries // 3:]]
    all_labels = entities["label"].tolist()
    search = timed([lambda q=q: client.get("/api/search", params={"q": q}).raise_for_status() for q in qs])
    plain_search = timed([lambda q=q: process.extract(q, all_labels, scorer=fuzz.WRatio, limit=20) for q in qs])
    degree = triples["head"].value_counts()
    ids = [str(entities["id"].iat[i]) for i in picks] + [str(degree.index[0])]   # ... and the best-connected
    client.get("/entity/" + quote(ids[0], safe=""))                           # warm: triples grouped, evidence
    page = timed([lambda e=e: client.get("/entity/" + quote(e, safe="")).raise_for_status() for e in ids])
    api = timed([lambda e=e: client.get(f"/api/entity/{quote(e, safe='')}/triples").raise_for_status()
                 for e in ids])

    def plain_entity(e: str) -> None:
        entities[entities["id"] == e]
        triples[triples["head"] == e].head(50)
        triples[triples["tail"] == e].head(50)
    plain_page = timed([lambda e=e: plain_entity(e) for e in ids])
    rows = []
    for what, ours, plain in (("search", search, plain_search), ("entity page (HTML)", page, plain_page),
                              ("entity triples (JSON)", api, plain_page)):
        (m, p), (pm, pp) = percentiles(ours), percentiles(plain)
        rows.append(f"| {name} | {what} | {m:.1f} | {p:.1f} | {pm:.1f} | {pp:.1f} | {m / max(pm, 1e-6):.1f} |")
    rows.append(f"| {name} | start-up: app {boot['app']:.2f}s, first search {boot['first_search']:.2f}s, first "
                f"entity page {boot['first_entity']:.2f}s; peak RSS {boot['peak_rss_mb']:.0f} MB | | | | | |")
    return rows


def sparql_rows(name: str, triples_path: Path, limit: int, folder: Path) -> list[str]:
    """rdflib's parse of `limit` triples as Turtle, and one SELECT over them."""
    import pyarrow.parquet as pq
    import rdflib

    table = pq.read_table(triples_path, columns=["head", "relation", "tail"]).slice(0, limit).to_pydict()
    ttl = folder / f"sparql_{limit}.ttl"
    with ttl.open("w", encoding="utf-8") as out:
        for h, r, t in zip(table["head"], table["relation"], table["tail"], strict=True):
            out.write(f"<{h}> <{r}> <{t}> .\n")
    t0 = time.perf_counter()
    graph = rdflib.Graph().parse(ttl, format="turtle")
    load = time.perf_counter() - t0
    head = table["head"][0]
    t0 = time.perf_counter()
    rows = list(graph.query(f"SELECT ?r ?t WHERE {{ <{head}> ?r ?t }}"))
    query = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return [f"| {name} | SPARQL: rdflib parse of {len(table['head']):,} triples {load:.1f}s; SELECT of one "
            f"entity's triples {query * 1000:.1f} ms ({len(rows)} rows); peak RSS so far {peak:.0f} MB | | | | | |"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--triples", type=int, default=1_000_000)
    parser.add_argument("--sample", default=None, help="a pipeline already run (default: pipelines/default.yaml "
                                                        "when its artifacts exist)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sparql-triples", type=int, default=100_000)
    parser.add_argument("--folder", default=None, help="where to write the synthetic run (default: a temp dir)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()

    from tests.web_synthetic import write_synthetic

    rng = random.Random(0)
    rows: list[str] = []
    sample = Path(args.sample) if args.sample else REPO / "pipelines" / "default.yaml"
    if (REPO / "artifacts" / "fuse" / "entities.parquet").exists() or args.sample:
        rows += measure("sample", sample, args.queries, rng)
    else:
        print("sample graph skipped: run `make run` first (or pass --sample PIPELINE)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="explore-latency-") as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        pipeline = write_synthetic(folder, args.entities, args.triples, hub_degree=5000, embedding_dim=64,
                                   model=True)
        made = time.perf_counter() - t0
        name = f"synthetic {args.entities:,} / {args.triples:,}"
        rows += measure(name, pipeline, args.queries, rng)
        rows += sparql_rows(name, folder / "artifacts" / "fuse" / "triples.parquet", args.sparql_triples, folder)
    body = ("| graph | what | median ms | p95 ms | plain median ms | plain p95 ms | ratio (median) |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(rows)
            + f"\n\nSynthetic artifacts written in {made:.0f}s. Plain: rapidfuzz over the label list (no tiers, no "
            "aliases) for search; pandas filters on the triples table for entity pages (no evidence, labels or "
            "HTML). Target: p95 < 200 ms for search and entity pages.\n")
    command = "python benchmarks/explore_latency.py " + " ".join(sys.argv[1:])
    write_section("explore_latency", "kgpipe explore: start-up, search and entity-page latency", body, command,
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
