"""Claim: entity resolution scales sub-quadratically: from 100k to 1M mentions (10x) wall time grows at most
15x, and 1M mentions finish in under 15 minutes and 8 GB on a 2-core machine, while blocking keeps nearly all
true pairs.

Data: synthetic, generated here with a fixed seed. Entity names are 1-4 words drawn from one Zipf-distributed
vocabulary (rank r has weight 1/r^1.1) that starts with the words organisation and place names share
(University, Institute, of, Research, Inc, Center, and city names), so common words recur across thousands
of clusters and blocking cannot rely on them; rarer words are pseudo-words. Each entity gets a Zipf-sized
number of mentions (exponent 1.8, at most 200, scaled to a mean of 10); each mention is its name verbatim
(60%), the acronym (5%), or a variant: a typo in one word (25% of variants), abbreviated words (Univ., Inst.,
Lab.), a word dropped, two words swapped, a city or corporate suffix added, changed case. Gold: the entity
each mention came from.

Blocking caps the LSH candidates per name (BlockingConfig.max_candidates, cardinality node pruning): in this
vocabulary the pseudo-words get denser as the corpus grows, so without a cap the pairs per name would grow
too. Each size runs in a fresh process (so peak memory is that size's): wall time of `resolve`, peak RSS, blocking
pair completeness (share of true mention pairs that blocking proposes or that share a normalised name),
candidate pairs, and pairwise P/R/F1. A 'plain' reference in the same run: rapidfuzz token_sort_ratio over
all pairs of distinct names at 10k (process.cdist, the plain library doing the all-pairs work), extrapolated
quadratically to the larger sizes.

Timing on a shared machine moves by 15% or more from one run to the next, so `--repeat R` runs every size R
times, interleaved (10k, 100k, 1M, 10k, 100k, 1M, ...) so that a slow spell hits all sizes alike; the table
shows the median time of each size and the growth is given both from the medians and per repeat.

With `--learn fixed,em` the sizes run once per resolution mode (ResolutionConfig.learn), every mode of a size
in its own fresh process and the modes interleaved (10k fixed, 10k em, 100k fixed, ...; the next repeat em first), and
the section er_scale_learn compares them: CPU seconds of every run, the medians, the ratio em / fixed (the claim:
learning adds at most 10% at 1M mentions; EM runs on a hash-sampled subset of the candidate pairs,
EmConfig.m_pairs), the seconds of each step of `resolve` (learning included), pairwise P/R/F1 and the EM fit.

Usage: python benchmarks/er_scale.py [--sizes 10000 100000 1000000] [--repeat 1] [--no-write]
       python benchmarks/er_scale.py --learn fixed,em [--sizes ...] [--repeat R] [--no-write]
       python benchmarks/er_scale.py --engine ray [--workers 2] [--sizes ...] [--repeat R] [--no-write]
         (each size on the local engine and on a local Ray instance, interleaved: wall times, their ratio, and
         whether the clusters are identical; exits 1 if they are not)
       python benchmarks/er_scale.py --one N   (internal: one size, prints JSON)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _er import table
from _report import write_section

COMMON = ["University", "of", "Institute", "Technology", "Research", "Inc", "Center", "National", "College",
          "Laboratory", "Science", "Company", "Group", "Department", "International", "Systems", "State",
          "School", "Foundation", "Hospital", "Bank", "Museum", "Society", "Services", "Corporation"]
CITIES = ["Berlin", "Paris", "London", "Boston", "Tokyo", "Madrid", "Rome", "Vienna", "Zurich", "Oslo", "Lyon",
          "Austin", "Denver", "Seattle", "Chicago", "Toronto", "Sydney", "Delhi", "Cairo", "Lima", "Quito",
          "Dublin", "Prague", "Warsaw", "Munich", "Milan", "Naples", "Turin", "Porto", "Lisbon", "Geneva",
          "Bern", "Basel", "Leeds", "York", "Bristol", "Oxford", "Cambridge", "Kyoto", "Osaka", "Seoul"]
ABBREVIATIONS = {"University": "Univ.", "Institute": "Inst.", "Laboratory": "Lab.", "Technology": "Tech.",
                 "International": "Intl.", "Department": "Dept.", "Corporation": "Corp.", "National": "Natl."}
SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in ("a", "e", "i", "o", "u")] + [
    "tor", "ven", "mar", "lin", "dor", "sen", "bra", "cos", "gor", "zen", "tel", "van", "qu", "es", "al", "is"]


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Common words and cities first (the head of the Zipf curve), then unique capitalised pseudo-words of
    two to four syllables (about 10 million possible)."""
    words = list(dict.fromkeys(COMMON + CITIES))
    seen = {w.lower() for w in words}
    while len(words) < size:
        batch = rng.integers(0, len(SYLLABLES), size=(size, 4))
        lengths = rng.integers(2, 5, size=size)
        for row, length in zip(batch.tolist(), lengths.tolist(), strict=True):
            word = "".join(SYLLABLES[i] for i in row[:length])
            if word not in seen and len(words) < size:
                seen.add(word)
                words.append(word.capitalize())
    return words


def typo(word: str, rng: np.random.Generator) -> str:
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = rng.integers(0, 4)
    letter = chr(int(rng.integers(97, 123)))
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + letter + word[i:]
    if kind == 2:
        return word[:i] + letter + word[i + 1:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


def variant(words: list[str], rng: np.random.Generator) -> str:
    """One way of writing a name; the operations are drawn independently."""
    words = list(words)
    roll = rng.random()
    if roll < 0.6:
        return " ".join(words)
    if roll < 0.65 and len(words) >= 3:
        return "".join(w[0] for w in words if w != "of").upper()
    if rng.random() < 0.25:
        i = int(rng.integers(0, len(words)))
        words[i] = typo(words[i], rng)
    if rng.random() < 0.3:
        words = [ABBREVIATIONS.get(w, w) if rng.random() < 0.7 else w for w in words]
    if rng.random() < 0.15 and len(words) >= 3:
        words.pop(int(rng.integers(0, len(words))))
    if rng.random() < 0.1 and len(words) >= 2:
        i = int(rng.integers(0, len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    text = " ".join(words)
    extra = rng.random()
    if extra < 0.15:
        text += ", " + CITIES[int(rng.integers(0, len(CITIES)))]
    elif extra < 0.22:
        text += rng.choice([" Inc.", ", Ltd", " Corp."])
    case = rng.random()
    if case < 0.08:
        text = text.lower()
    elif case < 0.11:
        text = text.upper()
    return text


def generate(n_mentions: int, seed: int = 7) -> tuple[list[str], np.ndarray]:
    """Mentions (strings) and their entity ids."""
    rng = np.random.default_rng(seed)
    n_entities = max(n_mentions // 10, 10)
    vocab = vocabulary(max(4 * n_entities, 2000), rng)
    ranks = np.arange(1, len(vocab) + 1)
    weights = 1.0 / ranks ** 1.1
    weights /= weights.sum()
    names: list[list[str]] = []
    seen: set[str] = set()
    distinctive = len(COMMON) + len(CITIES)
    while len(names) < n_entities:
        batch = n_entities - len(names) + 100
        drawn = rng.choice(len(vocab), size=(batch, 4), p=weights)
        lengths = rng.choice([1, 2, 3, 4], size=batch, p=[0.1, 0.35, 0.35, 0.2])
        extra = rng.integers(distinctive, len(vocab), size=batch)
        for row, length, fallback in zip(drawn.tolist(), lengths.tolist(), extra.tolist(), strict=True):
            ids = list(dict.fromkeys(row))[:length]
            if length == 1 or all(i < len(COMMON) for i in ids):  # one distinctive word at least
                ids.append(fallback)
            words = [vocab[i] for i in ids]
            key = " ".join(words).lower()
            if key not in seen and len(names) < n_entities:
                seen.add(key)
                names.append(words)
    sizes = np.minimum(rng.zipf(1.8, size=n_entities), 200)
    sizes = np.maximum(1, np.round(sizes * n_mentions / sizes.sum())).astype(int)
    entity = np.repeat(np.arange(n_entities), sizes)[:n_mentions]
    if len(entity) < n_mentions:
        entity = np.concatenate([entity, rng.integers(0, n_entities, n_mentions - len(entity))])
    rng.shuffle(entity)
    mentions = [variant(names[e], rng) for e in entity.tolist()]
    return mentions, entity


def pair_completeness(result, entity: np.ndarray) -> float:
    """Share of true mention pairs whose names blocking paired (or that share a normalised name)."""
    from scipy import sparse

    from kgpipe.kg.similarity import rowwise_dot

    name_of_record = result.name_of_node[result.node_of]
    n_names = int(result.name_of_node.max()) + 1
    counts = sparse.csr_matrix((np.ones(len(entity)), (name_of_record, entity)),
                               shape=(n_names, int(entity.max()) + 1))
    counts.sum_duplicates()
    same_name = float((counts.data * (counts.data - 1) / 2).sum())
    pairs = result.candidate_names
    across = rowwise_dot(counts, counts, pairs[:, 0], pairs[:, 1]).sum() if len(pairs) else 0.0
    sizes = np.bincount(entity).astype(np.float64)
    total = float((sizes * (sizes - 1) / 2).sum())
    return (same_name + across) / total if total else 1.0


class ProcessMemory:
    """Peak memory of this process and every process under it (Ray's raylet, object store and workers), sampled
    every `every` seconds from /proc: per process the peak USS (pages only it holds), PSS (its share of shared
    pages: object-store pages mapped by several workers count once in all) and RSS (which counts the object
    store in full in every process that maps it); and the CPU seconds each used while sampled (for the
    scaling estimate: the driver's are serial work, the workers' parallel)."""

    def __init__(self, every: float = 1.0) -> None:
        import threading

        import psutil

        self.root = psutil.Process()
        self.every = every
        self.peaks: dict[int, dict] = {}
        self.cpu_start: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        while not self.stop.wait(self.every):
            for proc in [self.root, *self.root.children(recursive=True)]:
                try:
                    info = proc.memory_full_info()
                    name = "driver" if proc.pid == self.root.pid else " ".join(proc.cmdline()[:1])[:60]
                    times = proc.cpu_times()
                except (psutil.Error, OSError):
                    continue
                cpu = times.user + times.system
                peak = self.peaks.setdefault(proc.pid, {"name": name, "uss": 0, "pss": 0, "rss": 0, "cpu": 0.0})
                peak["cpu"] = cpu - self.cpu_start.setdefault(proc.pid, cpu)
                if name.startswith("ray::") or peak["name"] == "":
                    peak["name"] = name
                for key in ("uss", "pss", "rss"):
                    peak[key] = max(peak[key], getattr(info, key))

    def report(self) -> dict:
        self.stop.set()
        self.thread.join()
        mb = {pid: {k: (round(v / 1e6) if k in ("uss", "pss", "rss") else v) for k, v in p.items()}
              for pid, p in self.peaks.items()}
        top = max(mb.values(), key=lambda p: p["uss"])
        workers = [p for p in mb.values() if p["name"].startswith("ray::")]
        return {"processes": len(mb), "max_uss_mb": top["uss"], "max_uss_process": top["name"],
                "max_pss_mb": max(p["pss"] for p in mb.values()), "max_rss_mb": max(p["rss"] for p in mb.values()),
                "driver": mb.get(self.root.pid), "sum_pss_mb": sum(p["pss"] for p in mb.values()),
                "top": sorted(mb.values(), key=lambda p: -p["uss"])[:6],
                "cpu_driver": round(mb[self.root.pid]["cpu"], 1) if self.root.pid in mb else None,
                "cpu_workers": round(sum(p["cpu"] for p in workers), 1),
                "cpu_ray_system": round(sum(p["cpu"] for p in mb.values() if p not in workers
                                            and p["name"] != "driver"), 1)}


def ray_executor(workers: int, object_store_gb: float = 4.0, temp_dir: str = "/tmp/kgpipe-ray"):
    """A Ray instance of its own on this machine with `workers` CPUs (started here, outside the timing), its
    object store and its temp folder, where objects spill to disk, set explicitly."""
    import ray

    from kgpipe.engine import ExecutorConfig
    from kgpipe.engine.ray import RayExecutor

    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             configure_logging=False, object_store_memory=int(object_store_gb * 2**30), _temp_dir=temp_dir)
    ray.get([ray.remote(lambda: None).remote() for _ in range(workers)])  # workers up before the clock starts
    return RayExecutor(ExecutorConfig(engine="ray", address="local", num_cpus=workers), "fuse")


class RecordIds(Sequence):
    """'0', '1', ... made when read: the ids of n records without n strings."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [str(j) for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return str(i % self.n)


def run_one(n: int, engine: str = "local", workers: int = 2, object_store_gb: float = 4.0,
            completeness: bool = True, learn: str = "fixed") -> dict:
    """One size in this process. completeness: keep blocking's candidate name pairs to measure pair completeness
    (the engine comparison leaves it out: holding the pairs would add 16 bytes a pair to the driver's peak).
    learn: ResolutionConfig.learn (fixed weights, or em: weights learned on the candidate pairs)."""
    import hashlib

    from kgpipe.kg.evaluate import pairwise_prf
    from kgpipe.kg.resolve import RecordColumns, resolve
    from kgpipe.kg.similarity import ResolutionConfig

    t0 = time.perf_counter()
    mentions, entity = generate(n)
    gen_seconds = time.perf_counter() - t0
    records = RecordColumns(RecordIds(n), mentions)  # records as columns: the names and nothing per record
    executor = ray_executor(workers, object_store_gb) if engine == "ray" else None
    memory = ProcessMemory()
    load_before = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    result = resolve(records, ResolutionConfig(learn=learn), executor=executor, keep_candidates=completeness)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    processes = memory.report()
    clusters_sha = hashlib.sha256(result.labels.tobytes()).hexdigest()[:16]
    load_after = os.getloadavg()[0]
    quality = pairwise_prf(result.labels, entity)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mentions": n, "entities": int(entity.max()) + 1, "names": result.stats["names"],
            "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
            "generate_seconds": round(gen_seconds, 1), "peak_mb": round(peak_mb),
            "candidate_pairs": result.stats["blocking_candidate_pairs"],
            "pair_completeness": round(pair_completeness(result, entity), 4) if completeness else None,
            "precision": quality["precision"], "recall": quality["recall"], "f1": quality["f1"],
            "step_seconds": result.stats["seconds"], "step_cpu_seconds": result.stats["cpu_seconds"],
            "peak_mb_after": result.stats["peak_mb_after"],
            "load_average": [round(load_before, 1), round(load_after, 1)],
            "lsh_pairs_before_pruning": result.stats.get("blocking_lsh_pairs_before_pruning"),
            "guard_pairs_scored": result.stats.get("guard_pairs_scored"), "engine": engine, "learn": learn,
            "scored_pairs": result.stats["scored_pairs"],
            "em": {k: result.stats[k] for k in ("em_iterations", "em_converged", "em_prior", "em_pairs")
                   if k in result.stats} | ({"em_random_pairs": result.learned.random_pairs}
                                            if result.learned is not None else {}),
            "clusters_sha": clusters_sha, "memory": processes,
            "components_ray": dataclasses.asdict(executor.components_stats)
            if getattr(executor, "components_stats", None) is not None else None}


def plain_all_pairs(n: int) -> tuple[int, float]:
    """rapidfuzz over all pairs of the distinct names of an n-mention set: (names, seconds)."""
    from rapidfuzz import fuzz, process, utils

    mentions, _ = generate(n)
    names = sorted(set(mentions))
    t0 = time.perf_counter()
    process.cdist(names, names, scorer=fuzz.token_sort_ratio, processor=utils.default_process,
                  dtype=np.uint8, workers=1)
    return len(names), time.perf_counter() - t0


def one_run(n: int, engine: str = "local", workers: int = 2, object_store_gb: float = 4.0,
            completeness: bool = True, learn: str = "fixed") -> dict:
    """run_one(n) in a fresh process (so peak memory is that size's)."""
    proc = subprocess.run([sys.executable, __file__, "--one", str(n), "--engine", engine, "--workers", str(workers),
                           "--object-store-gb", str(object_store_gb), *([] if completeness else ["--no-completeness"]),
                           "--learn-mode", learn],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare_engines(args: argparse.Namespace) -> None:
    """Every size on the local engine and on Ray, interleaved; the clusters must be identical. --ray-only: Ray
    alone (a size one process cannot hold)."""
    engines = ("ray",) if args.ray_only else ("local", "ray")
    runs: dict[tuple[int, str], list[dict]] = {}
    for _ in range(args.repeat):
        for n in args.sizes:
            for engine in engines:
                runs.setdefault((n, engine), []).append(one_run(n, engine, args.workers, args.object_store_gb,
                                                                completeness=False))
                print(runs[n, engine][-1], flush=True)

    def median(n: int, engine: str) -> dict | None:
        done = sorted(runs.get((n, engine), []), key=lambda r: r["seconds"])
        return done[(len(done) - 1) // 2] if done else None

    rows, processes, estimates = [], [], []
    for n in args.sizes:
        local, ray = median(n, "local"), median(n, "ray")
        assert ray is not None
        hashes = {r["clusters_sha"] for e in engines for r in runs[n, e]}
        same = "yes" if local is not None and len(hashes) == 1 else ("NO" if len(hashes) > 1 else "n/a (Ray only)")
        memory = ray["memory"]
        rows.append([n, ray["names"], *(["-"] * 3 if local is None else
                                         [local["seconds"], local["cpu_seconds"], local["peak_mb"]]),
                     ray["seconds"], ray["cpu_seconds"], ray["peak_mb"], memory["max_uss_mb"], memory["max_pss_mb"],
                     "-" if local is None else round(ray["seconds"] / local["seconds"], 2), same,
                     "/".join(str(r["load_average"][0]) for r in (local, ray) if r is not None)])
        processes.extend([n, p["name"], p["uss"], p["pss"], p["rss"]] for p in memory["top"])
        serial, parallel = memory["cpu_driver"], memory["cpu_workers"]
        comps = ray.get("components_ray") or {}
        shuffled = 2 * comps.get("rounds", 0) * comps.get("edges", 0) * 16  # both steps of a round move the edges
        estimates.append([n, serial, parallel, memory["cpu_ray_system"], ray["seconds"],
                          round(serial + parallel / args.workers, 1), round(serial + parallel / 10, 1),
                          round(serial + parallel / 100, 1), f"{shuffled / 1e6:,.0f}"])
        if same == "NO":
            print(f"clusters differ at {n} mentions between runs", file=sys.stderr)
    body = (f"resolve on the local engine and on a local Ray instance of {args.workers} workers (started outside "
            f"the timing; object store {args.object_store_gb:g} GiB, spilling to its temp folder /tmp/kgpipe-ray), "
            "each size in fresh processes, interleaved; the median run of each. Records are passed as columns "
            "(RecordColumns). CPU seconds and peak MB (RSS) are the driver's own; the memory of every process "
            "(driver, raylet, object store, workers) was sampled each second from /proc: USS is what a process "
            "alone holds, PSS adds its share of shared pages (RSS would count the object store's pages in full in "
            "every worker that maps them). The last column is the machine's 1-minute load average before each run: "
            "above 2 (its cores), other work shared them and wall times include waiting for a core.\n\n"
            + table(["mentions", "distinct names", "local wall s", "local CPU s", "local peak MB", "Ray wall s",
                     "Ray driver CPU s", "Ray driver peak RSS MB", "Ray max USS MB (any process)",
                     "Ray max PSS MB (any process)", "Ray / local wall", "identical clusters",
                     "load average before (local/Ray run)"], rows)
            + "\n\nThe largest processes of each Ray run (peak USS):\n\n"
            + table(["mentions", "process", "peak USS MB", "peak PSS MB", "peak RSS MB"], processes)
            + "\n\nScaling, an ESTIMATE from the measured CPU seconds of the Ray run: the driver's are serial (nodes, "
              "corpus statistics, the merges between steps), the workers' spread over W workers, so wall(W) ~ "
              "driver + workers / W; it leaves out Ray's own processes (raylet, object store: the column before "
              "the measured wall), network transfer and stragglers, so it is a lower bound on the wall time. "
              "Shuffle volume: what the distributed connected components move (edges x 2 steps x rounds x 16 "
              "bytes).\n\n"
            + table(["mentions", "driver CPU s", "workers CPU s", "Ray system CPU s",
                     f"measured wall s ({args.workers} workers)", f"estimate {args.workers} workers s",
                     "estimate 10 workers s", "estimate 100 workers s", "components shuffle MB"], estimates))
    command = (f"python benchmarks/er_scale.py --engine ray --workers {args.workers} --sizes "
               + " ".join(map(str, args.sizes)) + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
               + (f" --object-store-gb {args.object_store_gb:g}" if args.object_store_gb != 4.0 else "")
               + (" --ray-only" if args.ray_only else ""))
    section = "er_scale_ray_only" if args.ray_only else "er_scale_ray"
    title = ("Entity resolution on Ray at sizes one process cannot hold" if args.ray_only
             else "Entity resolution on Ray vs the local engine")
    write_section(section, title, body, command, print_only=args.no_write)
    if any(row[-2] == "NO" for row in rows):
        raise SystemExit(1)


def compare_learning(args: argparse.Namespace, modes: list[str]) -> None:
    """Every size once per learn mode, in fresh processes, the modes interleaved within each repeat (in turn
    first); CPU seconds compared (each mode over the first, fixed), in all and per step of `resolve`."""
    runs: dict[tuple[int, str], list[dict]] = {}
    for repeat in range(args.repeat):
        for n in args.sizes:
            # the order alternates from one repeat to the next, so that running second is no mode's lot
            for mode in modes if repeat % 2 == 0 else modes[::-1]:
                runs.setdefault((n, mode), []).append(one_run(n, completeness=False, learn=mode))
                print(json.dumps(runs[n, mode][-1]), flush=True)

    def median_cpu(n: int, mode: str, step: str | None = None) -> float:
        return float(np.median([r["cpu_seconds"] if step is None else r["step_cpu_seconds"].get(step, 0.0)
                                for r in runs[n, mode]]))

    def median_run(n: int, mode: str) -> dict:
        done = sorted(runs[n, mode], key=lambda r: r["cpu_seconds"])
        return done[(len(done) - 1) // 2]

    base = modes[0]
    cpu_rows, step_rows, wall_rows, quality_rows, em_rows, verdicts = [], [], [], [], [], []
    for n in args.sizes:
        for mode in modes:
            cpu = [r["cpu_seconds"] for r in runs[n, mode]]
            ratio = median_cpu(n, mode) / median_cpu(n, base)
            per_run = [round(r["cpu_seconds"] / b["cpu_seconds"], 3) for r, b in zip(runs[n, mode], runs[n, base],
                                                                                    strict=True)]
            cpu_rows.append([n, mode, ", ".join(map(str, cpu)), median_cpu(n, mode),
                             float(np.median([r["seconds"] for r in runs[n, mode]])), round(ratio, 3),
                             ", ".join(map(str, per_run)),
                             ", ".join("/".join(map(str, r["load_average"])) for r in runs[n, mode])])
            step_rows.append([n, mode, *(round(median_cpu(n, mode, step), 2)
                                         if step in runs[n, mode][0]["step_cpu_seconds"] else "-" for step in STEPS)])
            middle = median_run(n, mode)
            wall_rows.append([n, mode, *(middle["step_seconds"].get(step, "-") for step in STEPS),
                              middle["peak_mb"], middle["guard_pairs_scored"]])
            quality_rows.append([n, mode, middle["scored_pairs"], middle["precision"], middle["recall"],
                                 middle["f1"]])
            if middle["em"]:
                em = middle["em"]
                em_rows.append([n, mode, em.get("em_iterations"), em.get("em_converged"), em.get("em_prior"),
                                em.get("em_pairs"), em.get("em_random_pairs")])
            if mode != base:
                # what learning costs: its own step and scoring with the learned weights, over fixed scoring
                added = (median_cpu(n, mode, "learning") + median_cpu(n, mode, "scoring")
                         - median_cpu(n, base, "scoring"))
                verdicts.append(
                    f"{n} mentions: {mode} / {base} CPU {ratio:.3f} ({100 * (ratio - 1):+.1f}%); learning + "
                    f"scoring with the learned weights take {added:+.1f} CPU s over {base}'s scoring "
                    f"({100 * added / median_cpu(n, base):+.1f}% of {base}'s resolve), clustering "
                    f"{median_cpu(n, mode, 'clustering') - median_cpu(n, base, 'clustering'):+.1f} s (the guard "
                    f"scored {middle['guard_pairs_scored']:,} pairs, {base} "
                    f"{median_run(n, base)['guard_pairs_scored']:,})")
    body = ("Synthetic Zipf-vocabulary name variants (the generator above, fixed seed); every size once per "
            f"learn mode ({', '.join(modes)}) in fresh processes, interleaved ({args.repeat} repeat(s), each mode "
            "first in turn), the "
            "local engine. CPU seconds are `resolve`'s own (process time of its process, all its threads); the "
            "machine's 2 cores are shared with other work, so wall seconds move more than CPU seconds and the "
            "ratio of the medians is what counts. The claim: learn=em within 10% of fixed at 1M mentions, EM on "
            "a hash-sampled subset of the candidate pairs (EmConfig.m_pairs, u on EmConfig.u_pairs random "
            "pairs).\n\n" + "".join(f"- {v}.\n" for v in verdicts) + "\n"
            + table(["mentions", "learn", "resolve CPU s per run", "median CPU s", "median wall s",
                     f"median CPU / {base}", f"per run CPU / {base} (same repeat)",
                     "load average before/after per run"], cpu_rows)
            + "\nCPU seconds per step of `resolve` (the median over the runs of each step):\n\n"
            + table(["mentions", "learn", *STEPS], step_rows)
            + "\nWall seconds per step (the median-CPU run of each), its peak MB (RSS) and the pairs the "
              "clustering guard scored:\n\n"
            + table(["mentions", "learn", *STEPS, "peak MB", "guard pairs"], wall_rows)
            + "\nPairwise quality against the generator's entities (the median-CPU run; blocking is the same in "
              "every mode, so the scored pairs are too):\n\n"
            + table(["mentions", "learn", "scored pairs", "P", "R", "F1"], quality_rows)
            + ("\nThe EM fit (iterations, converged, prior: the share of candidate pairs that match, candidate "
               "pairs EM ran on, random pairs u was counted on):\n\n"
               + table(["mentions", "learn", "iterations", "converged", "prior", "EM pairs", "random pairs"],
                       em_rows) if em_rows else ""))
    command = ("python benchmarks/er_scale.py --learn " + ",".join(modes) + " --sizes "
               + " ".join(map(str, args.sizes)) + (f" --repeat {args.repeat}" if args.repeat > 1 else ""))
    write_section("er_scale_learn", "Entity resolution at scale: learned weights (learn=em) vs fixed", body, command,
                  print_only=args.no_write)


STEPS = ["nodes", "features", "blocking", "learning", "scoring", "clustering"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="runs of every size, interleaved; medians reported")
    parser.add_argument("--one", type=int)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--engine", choices=["local", "ray"], default="local", help=(
        "ray: each size on a local Ray instance of --workers CPUs (started outside the timing) and on the local "
        "engine, interleaved; reports both, their wall-time ratio and whether the clusters are identical"))
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (CPUs) with --engine ray")
    parser.add_argument("--object-store-gb", type=float, default=4.0, help="Ray's object store (GiB); beyond it "
                        "objects spill to its temp folder, /tmp/kgpipe-ray")
    parser.add_argument("--no-completeness", action="store_true", help=argparse.SUPPRESS)  # internal, with --one
    parser.add_argument("--ray-only", action="store_true", help="with --engine ray: no local runs (sizes one process "
                        "cannot hold)")
    parser.add_argument("--learn", help=(
        "comma-separated learn modes to compare (fixed,em): each size once per mode, interleaved, in fresh "
        "processes; writes the section er_scale_learn (CPU seconds, ratio to the first mode, step seconds, F1)"))
    parser.add_argument("--learn-mode", choices=["fixed", "em"], default="fixed",
                        help=argparse.SUPPRESS)  # internal, with --one
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.engine, args.workers, args.object_store_gb,
                                 completeness=not args.no_completeness, learn=args.learn_mode)))
        return
    if args.learn:
        modes = [m.strip() for m in args.learn.split(",") if m.strip()]
        if len(modes) < 2 or any(m not in ("fixed", "em") for m in modes) or len(set(modes)) < len(modes):
            parser.error("--learn takes two or more of fixed, em, comma-separated (e.g. fixed,em)")
        compare_learning(args, modes)
        return
    if args.engine == "ray":
        compare_engines(args)
        return
    runs: dict[int, list[dict]] = {n: [] for n in args.sizes}
    for _ in range(args.repeat):
        for n in args.sizes:
            runs[n].append(one_run(n))
            print(runs[n][-1], flush=True)
    # the run with the median wall time stands for its size (results other than times are deterministic)
    rows = [sorted(runs[n], key=lambda r: r["seconds"])[(len(runs[n]) - 1) // 2] for n in args.sizes]
    base_names, base_seconds = plain_all_pairs(args.sizes[0])
    per_pair = base_seconds / (base_names * base_names)
    body_rows = []
    for row in rows:
        plain = per_pair * row["names"] ** 2
        body_rows.append([row["mentions"], row["entities"], row["names"], row["seconds"], row["cpu_seconds"],
                          row["peak_mb"],
                          row["candidate_pairs"], row["pair_completeness"], row["precision"], row["recall"],
                          row["f1"], f"{plain:.0f}"])
    growth = ""
    by_size = {r["mentions"]: r for r in rows}
    if 100_000 in by_size and 1_000_000 in by_size:
        big, small = by_size[1_000_000], by_size[100_000]
        growth = (f"\nGrowth 100k -> 1M mentions: wall time {big['seconds'] / small['seconds']:.1f}x, CPU time "
                  f"{big['cpu_seconds'] / small['cpu_seconds']:.1f}x (the claim: at most 15x)")
        if args.repeat > 1:
            paired = [b["seconds"] / a["seconds"] for a, b in zip(runs[100_000], runs[1_000_000], strict=True)]
            growth += (f", from the median of {args.repeat} interleaved runs of each size; per repeat (1M run over "
                       f"the 100k run just before it): " + ", ".join(f"{g:.1f}x" for g in paired)
                       + ". Wall seconds of every run: " + "; ".join(
                           f"{n}: " + ", ".join(str(r["seconds"]) for r in runs[n]) for n in args.sizes))
        growth += ".\n"
    median_note = (f" Each size ran {args.repeat} times, interleaved; each row is its run with the median wall time."
                   if args.repeat > 1 else "")
    body = ("Synthetic Zipf-vocabulary name variants (generator in the script, fixed seed); each size in a fresh "
            f"process.{median_note} The machine's 1-minute load average around each size is in the last table: "
            "above 2 (its cores), wall times include waiting for a core; CPU time is this process's own.\n\n"
            + table(["mentions", "entities", "distinct names", "resolve wall s", "resolve CPU s", "peak MB",
                     "candidate pairs",
                     "pair completeness", "P", "R", "F1",
                     f"plain all-pairs seconds (rapidfuzz cdist, measured at {args.sizes[0]}, x names^2)"],
                    body_rows)
            + growth
            + f"\nPlain reference: rapidfuzz token_sort_ratio over all {base_names}^2 name pairs took "
              f"{base_seconds:.1f} s at {args.sizes[0]} mentions; larger sizes are that rate times names^2.\n\n"
              "Wall seconds per step of `resolve`, the machine's 1-minute load average before and after, LSH "
              "pairs before the per-name cap, and the pairs the guard scored:\n\n"
            + table(["mentions", *rows[-1]["step_seconds"], "load before/after", "LSH pairs before cap",
                     "guard pairs"],
                    [[r["mentions"], *r["step_seconds"].values(), "/".join(map(str, r["load_average"])),
                      r["lsh_pairs_before_pruning"], r["guard_pairs_scored"]] for r in rows]))
    command = "python benchmarks/er_scale.py --sizes " + " ".join(map(str, args.sizes))
    if args.repeat > 1:
        command += f" --repeat {args.repeat}"
    write_section("er_scale", "Entity resolution at scale", body, command, print_only=args.no_write)


if __name__ == "__main__":
    main()
