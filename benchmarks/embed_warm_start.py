"""Claim: after adding 5% triples to a graph, a warm-started embedding (warm_start: true) reaches the test MRR
of training from scratch on the grown graph, within the seed-to-seed spread, in a fraction of its time.

For each seed, in one process, with the embed stage's own functions (kgpipe.embed: hash split, warm start
plan, train_and_evaluate with its early stopping and evaluation):
  base    - from scratch on 95% of the triples (a fixed partition, --holdout-seed), split: hash;
  scratch - from scratch on all the triples;
  warm    - warm-started from `base` on all the triples (its warm_epochs, early stopping as configured).
scratch and warm train and test on the same graph object: the same hash split, with base's training triples
kept in training (as the stage does when it warm-starts), so both are tested on the same triples, none of which
base trained on. Wall time is the whole train_and_evaluate call (model build, training, test evaluation, save);
scratch and warm run in alternating order from seed to seed.

Usage: python benchmarks/embed_warm_start.py [--data Nations|Kinships|UMLS|PATH] [--model ComplEx]
       [--epochs N] [--warm-epochs N] [--seeds 0,1,2] [--holdout-seed 0] [--threads N] [--no-write]
PATH: a TSV or parquet triples file, or a folder of train/valid/test files (all of them are pooled).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("PYSTOW_HOME", str(REPO / ".pystow"))

from _report import write_section  # noqa: E402

Triple = tuple[str, str, str]
NEW_SHARE = 0.05


def pooled_triples(data: str) -> list[Triple]:
    """Every triple of a PyKEEN built-in dataset (training, validation and testing pooled), or of a file or
    folder, in a stable order."""
    from kgpipe.embed.data import dataset_class, read_triples, split_files

    path = Path(data)
    if path.exists():
        files = list(split_files(path).values()) if path.is_dir() else [path]
        triples = [t for file in files for t in read_triples(file, str(file))]
    else:
        dataset = dataset_class(data)()
        triples = [tuple(t) for factory in (dataset.training, dataset.validation, dataset.testing)
                   if factory is not None for t in factory.triples.tolist()]  # type: ignore[misc]
    return sorted(dict.fromkeys(triples))


@dataclass
class Result:
    mrr: float
    seconds: float
    epochs: int
    test_triples: int


def train(graph: Any, config: Any, workdir: Path, previous: Any = None) -> tuple[Result, Path]:
    from kgpipe.embed.train import train_and_evaluate

    started = time.perf_counter()
    trained = train_and_evaluate(graph, config, workdir=workdir, checkpoint_minutes=60, warm_start=previous)
    seconds = time.perf_counter() - started
    outcome = trained.outcome
    return Result(outcome.metrics["mrr"], seconds, outcome.epochs_trained, int(graph.testing.num_triples)), \
        trained.folder


def one_seed(triples: list[Triple], new: set[Triple], args: argparse.Namespace, seed: int,
             work: Path) -> dict[str, Result]:
    from kgpipe.embed.data import build_graph
    from kgpipe.embed.defaults import training_config
    from kgpipe.embed.warm_start import plan_warm_start, warm_config

    overrides: dict[str, Any] = {"seed": seed, "device": "cpu"}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    config, _ = training_config(args.model, overrides)
    origin = {"training": args.data}

    def graph(of: list[Triple], keep: frozenset[Triple] = frozenset()) -> Any:
        return build_graph({"training": of}, origin=origin, split="hash", seed=seed, keep_in_training=keep,
                           inverse_triples=config.inverse_triples)

    base, base_model = train(graph([t for t in triples if t not in new]), config, work / f"base-{seed}")
    plan = plan_warm_start(base_model, config)
    if plan.previous is None:
        raise SystemExit(f"no warm start: {plan.reason}")
    full = graph(triples, plan.previous.training_triples)
    runs = {"scratch": lambda: train(full, config, work / f"scratch-{seed}")[0],
            "warm": lambda: train(full, warm_config(config, args.warm_epochs), work / f"warm-{seed}",
                                  plan.previous)[0]}
    # alternate which goes first, so that drift on a shared machine hits both alike
    order = ["scratch", "warm"] if seed % 2 == 0 else ["warm", "scratch"]
    done = {name: runs[name]() for name in order}
    return {"base": base, "scratch": done["scratch"], "warm": done["warm"]}


def spread(values: list[float], digits: int) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def table(results: dict[int, dict[str, Result]], args: argparse.Namespace, sizes: tuple[int, int]) -> str:
    seeds = sorted(results)
    lines = [f"{args.data}: {sizes[0]} triples, {sizes[1]} of them ({NEW_SHARE:.0%}) added after the base run; "
             f"model {args.model}, kgpipe defaults{f', epochs {args.epochs}' if args.epochs else ''}"
             f"{f', warm_epochs {args.warm_epochs}' if args.warm_epochs else ''}; test = the hash split's test "
             "triples of the grown graph (the seed is the split's too), the same for scratch and warm; MRR filtered, "
             "realistic, both sides; s = wall seconds of train_and_evaluate", "",
             "| seed | test triples | base MRR | base s | scratch MRR | scratch epochs | scratch s | warm MRR "
             "| warm epochs | warm s | warm/scratch time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for seed in seeds:
        r = results[seed]
        lines.append(f"| {seed} | {r['scratch'].test_triples} | {r['base'].mrr:.4f} | {r['base'].seconds:.1f} | "
                     f"{r['scratch'].mrr:.4f} | "
                     f"{r['scratch'].epochs} | {r['scratch'].seconds:.1f} | {r['warm'].mrr:.4f} | {r['warm'].epochs} "
                     f"| {r['warm'].seconds:.1f} | {r['warm'].seconds / r['scratch'].seconds:.2f} |")

    def column(run: str, field: str) -> list[float]:
        return [float(getattr(results[s][run], field)) for s in seeds]

    ratios = [results[s]["warm"].seconds / results[s]["scratch"].seconds for s in seeds]
    lines.append(f"| mean ± sd | | {spread(column('base', 'mrr'), 4)} | {spread(column('base', 'seconds'), 1)} | "
                 f"{spread(column('scratch', 'mrr'), 4)} | {spread(column('scratch', 'epochs'), 1)} | "
                 f"{spread(column('scratch', 'seconds'), 1)} | {spread(column('warm', 'mrr'), 4)} | "
                 f"{spread(column('warm', 'epochs'), 1)} | {spread(column('warm', 'seconds'), 1)} | "
                 f"{spread(ratios, 2)} |")
    gap = statistics.fmean(column("warm", "mrr")) - statistics.fmean(column("scratch", "mrr"))
    sd = statistics.stdev(column("scratch", "mrr")) if len(seeds) > 1 else 0.0
    lines += ["", f"warm - scratch mean MRR: {gap:+.4f} (scratch seed-to-seed sd {sd:.4f}); warm/scratch wall time "
              f"{statistics.fmean(column('warm', 'seconds')) / statistics.fmean(column('scratch', 'seconds')):.2f} "
              "(ratio of means)"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="Nations")
    parser.add_argument("--model", default="ComplEx")
    parser.add_argument("--epochs", type=int, default=None, help="default: kgpipe's per-model default")
    parser.add_argument("--warm-epochs", type=int, default=None, help="default: the stage's (a quarter)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--holdout-seed", type=int, default=0, help="which 5%% of the triples arrive later")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    triples = pooled_triples(args.data)
    new = set(random.Random(args.holdout_seed).sample(triples, round(NEW_SHARE * len(triples))))
    results = {}
    with tempfile.TemporaryDirectory(prefix="kgpipe-bench-warm-") as folder:
        for seed in (int(s) for s in args.seeds.split(",")):
            results[seed] = one_seed(triples, new, args, seed, Path(folder))
            print(f"seed {seed}: " + ", ".join(f"{k} MRR {v.mrr:.4f} in {v.seconds:.1f}s ({v.epochs} epochs)"
                                                for k, v in results[seed].items()), file=sys.stderr)
    body = table(results, args, (len(triples), len(new)))
    write_section("embed_warm_start", "Embed warm start after adding 5% of the triples", body,
                  "python " + " ".join(["benchmarks/embed_warm_start.py", *sys.argv[1:]]), print_only=args.no_write)


if __name__ == "__main__":
    main()
