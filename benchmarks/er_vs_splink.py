"""Claim (issue 21): kgpipe's entity resolution with weights learned from the data (`learn: em`) is at least as
good as its fixed weights, and ahead of Splink trained the way its documentation shows for unlabelled data, on
the four record-linkage development sets.

Sets (benchmarks/_er_sets.py): DBLP-ACM (title + authors + year), Walmart-Amazon (title + modelno + brand +
price), Restaurants (name + phone + street), all one-to-one linkage between two sources, and the affiliation
strings (deduplication of names alone).

Methods, each in this one run:
  kgpipe fixed  resolve() with the default ResolutionConfig and the set's attribute rules;
  kgpipe em     the same with learn="em" (Fellegi-Sunter weights learned without labels);
  Splink        Splink 5 on DuckDB: one comparison per column (the name: exact with term-frequency
                adjustment, Jaro-Winkler >= 0.95, word Jaccard >= 0.6 / 0.4 / 0.2; words of authors and street
                by Jaccard; year, modelno, brand, phone exact; price by percentage difference), trained without
                labels as its documentation shows: probability_two_random_records_match from deterministic rules
                (exact name, exact phone / modelno; for names alone also the same set of words) at recall 0.7, u
                by random sampling (seeded), m by EM in two sessions (blocked on the name, which trains the other
                comparisons, then on an attribute, which trains the name; for names alone, their first and last
                words and the count of shared rare words are three more comparisons and the sessions block on the
                first and on the last word); predictions blocked on any shared word that at most
                `--rare` records have, or an exact phone / modelno / year-and-first-word; threshold 0.5;
                one-to-one by cluster_using_single_best_links for linkage, connected components for
                deduplication.
Scores are pairwise precision / recall / F1 of record pairs (cross-source pairs for linkage; the transitive
closure of the gold for deduplication), on the full gold and outside the set's gold audit (records a stated rule
finds misfiled or missing in the gold are left out of both predictions and gold: benchmarks/make_er_audits.py for
Restaurants and Walmart-Amazon, benchmarks/data/affiliations_gold_audit.tsv for the affiliation strings). Pair
coverage: the share of gold pairs among the pairs each method compares (kgpipe: its blocking's candidates; Splink:
its prediction blocking rules).

Splink is a benchmark dependency, not a runtime one: `pip install -e '.[bench]'` (splink, duckdb).

Other two-source sets in pyJedAI's layout (two `|`-separated record files with an `id` column, `gt.csv` with the
gold pairs) run the same way with `--pipe FOLDER`, the column that names a record and each attribute column's kind
(tokens, address, exact, code, phone, numeric, price) given; Splink compares each kind as it compares the
development sets' columns of that kind (words by Jaccard, exact values, term-frequency adjusted exact values for
'exact', percentage difference for prices; phones and codes block too). Such a run writes a section of its own.

Usage: python benchmarks/er_vs_splink.py [--data DIR] [--sets dblp_acm,walmart_amazon,restaurants,affiliations]
                                         [--rare N] [--no-write]
       python benchmarks/er_vs_splink.py --sets '' --pipe FOLDER [--files A.csv,B.csv] --name-column title
                                         --attr modelno=code --attr brand=exact --attr price=price [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _er import table
from _er_sets import DATA, KINDS, LOADERS, ErSet, pair, pipe_set
from _report import write_section


@dataclass
class Row:
    method: str
    predicted: set[tuple[str, str]]
    seconds: float
    coverage: float
    note: str = ""


def prf(predicted: set[tuple[str, str]], gold: set[tuple[str, str]]) -> tuple[float, float, float]:
    tp = len(predicted & gold)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(gold) if gold else 0.0
    return round(p, 4), round(r, 4), round(2 * p * r / (p + r) if p + r else 0.0, 4)


def cluster_pairs(clusters: list[list[str]], linkage: bool) -> set[tuple[str, str]]:
    """Record pairs put in one cluster (for linkage only those across the two sources: ids are 'source:id')."""
    out = set()
    for members in clusters:
        for k, a in enumerate(members):
            for b in members[k + 1:]:
                if not linkage or a.split(":", 1)[0] != b.split(":", 1)[0]:
                    out.add(pair(a, b))
    return out


def restricted(pairs: set[tuple[str, str]], keep_ids: set[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, b in pairs if a in keep_ids and b in keep_ids}


# --- kgpipe ------------------------------------------------------------------------------------------------


def kgpipe_row(data: ErSet, learn: str) -> tuple[Row, dict]:
    from kgpipe.kg.resolve import resolve
    from kgpipe.kg.similarity import ResolutionConfig

    config = ResolutionConfig(attributes=data.attributes, learn=learn)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    result = resolve(data.records, config, one_to_one_sources=data.sources, keep_candidates=True)
    seconds = time.perf_counter() - t0
    predicted = cluster_pairs(result.clusters, data.sources is not None)
    return Row(f"kgpipe {learn}", predicted, seconds, kgpipe_coverage(data, result)), result.stats


def kgpipe_coverage(data: ErSet, result) -> float:
    """Share of gold pairs whose records' names blocking paired (or that share a name), or that learn=em's code
    blocks paired (records sharing a rare code)."""
    assert result.candidate_names is not None and result.name_of_node is not None
    name_of = dict(zip(result.record_ids, result.name_of_node[result.node_of].tolist(), strict=True))
    node_of = dict(zip(result.record_ids, result.node_of.tolist(), strict=True))
    candidates = {(int(a), int(b)) for a, b in result.candidate_names.tolist()}
    by_code = set() if result.code_pairs is None else {(int(a), int(b)) for a, b in result.code_pairs.tolist()}
    covered = 0
    for a, b in data.gold:
        na, nb = name_of[a], name_of[b]
        nodes = (min(node_of[a], node_of[b]), max(node_of[a], node_of[b]))
        covered += na == nb or (na, nb) in candidates or (nb, na) in candidates or nodes in by_code
    return covered / max(len(data.gold), 1)


# --- Splink ------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def _clean(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


# how Splink compares each kind of attribute (kgpipe's AttributeRule.kind), in the order its comparisons are made:
# words by Jaccard; exact values; exact values with term-frequency adjustment. Phones and codes block too.
_WORDS, _EXACT, _TF_EXACT = ("tokens", "address"), ("numeric", "code", "phone"), ("exact",)
_BLOCKING = ("phone", "code")


def _number(text: str) -> str:
    """A number as one text whatever its spelling ('1999', '1999.0' -> '1999'); other text as it is."""
    try:
        value = float(text)
    except ValueError:
        return text.strip()
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _columns(data: ErSet, kinds: tuple[str, ...]) -> list[str]:
    return [column for column, kind in data.kinds.items() if kind in kinds]


def splink_frame(data: ErSet, rare: int) -> pd.DataFrame:
    """The set's table with what Splink compares and blocks on: cleaned name and its words, the words at most
    `rare` records have (blocking), first word, and per attribute a cleaned value by its kind (None where
    missing): words for tokens and addresses, letters and digits of a code, the last 7 digits of a phone, a
    number's one spelling, a price as a number."""
    frame = data.frame.copy()
    frame["name"] = frame["name"].map(_clean)
    frame["words"] = frame["name"].map(lambda s: sorted(set(s.split())))
    counts = Counter(w for words in frame["words"] for w in words)
    frame["rare_words"] = frame["words"].map(lambda ws: [w for w in ws if counts[w] <= rare])
    frame["word_set"] = frame["words"].map(lambda ws: " ".join(ws) or None)
    frame["first_word"] = frame["name"].map(lambda s: s.split(" ", 1)[0] if s else None)
    frame["last_word"] = frame["name"].map(lambda s: s.rsplit(" ", 1)[-1] if s else None)
    for column, kind in data.kinds.items():
        if kind in _WORDS:
            frame[column] = frame[column].map(_clean)
            frame[f"{column}_words"] = frame[column].map(lambda s: sorted(set(s.split())) or None)
        elif kind == "exact":
            frame[column] = frame[column].map(_clean)
        elif kind == "code":
            frame[column] = frame[column].map(lambda s: re.sub(r"[^a-z0-9]", "", s.lower()))
        elif kind == "phone":
            frame[column] = frame[column].map(lambda s: re.sub(r"\D", "", s)[-7:])
        elif kind == "numeric":
            frame[column] = frame[column].map(_number)
        elif kind == "price":
            frame[column] = pd.to_numeric(frame[column].str.replace(r"[^0-9.]", "", regex=True), errors="coerce")
    frame = frame.replace({"": None})
    frame["words"] = frame["words"].map(lambda ws: ws or None)
    return frame


def _jaccard(column: str, at: float) -> str:
    inter = f"len(list_intersect({column}_l, {column}_r))"
    return f"{inter} / (len({column}_l) + len({column}_r) - {inter}) >= {at}"


def splink_settings(data: ErSet, frame: pd.DataFrame):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    name = cl.CustomComparison(output_column_name="name", comparison_levels=[
        cll.NullLevel("name"),
        cll.ExactMatchLevel("name").configure(tf_adjustment_column="name"),
        cll.JaroWinklerLevel("name", 0.95),
        *(cll.CustomLevel(_jaccard("words", at), f"word Jaccard >= {at}") for at in (0.6, 0.4, 0.2)),
        cll.ElseLevel()])
    comparisons = [name]
    for column in _columns(data, _WORDS):
        comparisons.append(cl.CustomComparison(output_column_name=column, comparison_levels=[
            cll.NullLevel(f"{column}_words"), cll.ExactMatchLevel(column),
            *(cll.CustomLevel(_jaccard(f"{column}_words", at), f"{column} word Jaccard >= {at}")
              for at in (0.6, 0.3)),
            cll.ElseLevel()]))
    comparisons += [cl.ExactMatch(column) for column in _columns(data, _EXACT)]
    comparisons += [cl.ExactMatch(column).configure(term_frequency_adjustments=True)
                    for column in _columns(data, _TF_EXACT)]
    for column in _columns(data, ("price",)):
        comparisons.append(cl.CustomComparison(output_column_name=column, comparison_levels=[
            cll.NullLevel(column), *(cll.PercentageDifferenceLevel(column, p) for p in (0.01, 0.1, 0.3)),
            cll.ElseLevel()]))
    if not data.attributes:  # names alone: token-level comparisons too, as kgpipe's word signals
        shared = "len(list_intersect(rare_words_l, rare_words_r))"
        comparisons += [cl.ExactMatch("first_word"), cl.ExactMatch("last_word"),
                        cl.CustomComparison(output_column_name="rare_words", comparison_levels=[
                            cll.CustomLevel("rare_words_l IS NULL OR rare_words_r IS NULL OR len(rare_words_l) = 0 "
                                            "OR len(rare_words_r) = 0", "no rare word").configure(is_null_level=True),
                            cll.CustomLevel(f"{shared} >= 2", "two rare words shared"),
                            cll.CustomLevel(f"{shared} = 1", "one rare word shared"), cll.ElseLevel()])]
    keys = _columns(data, _BLOCKING)   # a phone or a code identifies: predictions are blocked on it too
    numbers = _columns(data, ("numeric",))
    rules = [block_on("rare_words", arrays_to_explode=["rare_words"]), *(block_on(c) for c in keys),
             *(block_on(c, "first_word") for c in numbers)]
    settings = SettingsCreator(
        link_type="link_only" if data.sources else "dedupe_only", comparisons=comparisons,
        blocking_rules_to_generate_predictions=rules, retain_matching_columns=False)
    deterministic = [block_on("name"), *(block_on(c) for c in keys)]
    if not data.attributes:  # names alone: their first and last words are compared too, and EM blocks on each;
        # the same words in any order are a deterministic rule too (3 of the 2,260 affiliation strings repeat
        # exactly, so the exact name alone puts the prior at a 4,000th of the truth and Splink links nothing)
        deterministic.append(block_on("word_set"))
        return settings, deterministic, [block_on("first_word"), block_on("last_word")]
    # the second session blocks on an attribute, which trains the name: an identifier, else a number (the year),
    # else the first attribute
    second = (keys or numbers or list(data.kinds))[0]
    return settings, deterministic, [block_on("name"), block_on(second)]


def splink_coverage(data: ErSet, frame: pd.DataFrame) -> float:
    """Share of gold pairs that Splink's prediction blocking rules compare."""
    rows = frame.set_index("unique_id")
    rare = {i: set(ws) for i, ws in rows["rare_words"].items()}
    keys, numbers = _columns(data, _BLOCKING), _columns(data, ("numeric",))
    covered = 0
    for a, b in data.gold:
        hit = bool(rare[a] & rare[b])
        hit = hit or any(rows.at[a, c] is not None and rows.at[a, c] == rows.at[b, c] for c in keys)
        hit = hit or any(rows.at[a, c] is not None and rows.at[a, c] == rows.at[b, c]
                         and rows.at[a, "first_word"] == rows.at[b, "first_word"] for c in numbers)
        covered += hit
    return covered / max(len(data.gold), 1)


def splink_row(data: ErSet, rare: int, u_pairs: float) -> Row:
    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.WARNING)
    frame = splink_frame(data, rare)
    coverage = splink_coverage(data, frame)
    t0 = time.perf_counter()
    settings, deterministic, sessions = splink_settings(data, frame)
    db = DuckDBAPI()
    if data.sources:
        tables = [db.register(frame[frame["source_dataset"] == s].reset_index(drop=True), dataset_display_name=s)
                  for s in data.sources]
    else:
        tables = [db.register(frame, dataset_display_name="records")]
    linker = Linker(tables, settings)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_pairs, seed=1)
    for rule in sessions:
        linker.training.estimate_parameters_using_expectation_maximisation(rule, record_sample_proportion=1.0)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    if data.sources:
        clustered = linker.clustering.cluster_using_single_best_links(
            predictions, duplicate_free_datasets=list(data.sources), threshold_match_probability=0.5)
    else:
        clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=0.5)
    clusters = clustered.as_pandas_dataframe().groupby("cluster_id")["unique_id"].apply(list).tolist()
    seconds = time.perf_counter() - t0
    return Row("Splink 5 (DuckDB)", cluster_pairs(clusters, data.sources is not None), seconds, coverage)


# --- the run -----------------------------------------------------------------------------------------------


def run_set(data: ErSet, rare: int, u_pairs: float) -> tuple[list[list[object]], list[str]]:
    rows, notes = [], []
    for learn in ("fixed", "em"):
        row, stats = kgpipe_row(data, learn)
        rows.append(row)
        if learn == "em":
            notes.append(f"{data.name}: EM {stats['em_iterations']} iterations (converged: {stats['em_converged']}), "
                         f"prior {stats['em_prior']:.4g} on {stats['em_pairs']} candidate pairs")
    rows.append(splink_row(data, rare, u_pairs))
    out = []
    keep_ids = None if data.keep is None else {r.id for r, k in zip(data.records, data.keep.tolist(), strict=True)
                                              if k}
    if keep_ids is not None:
        notes.append(f"{data.name}: {len(data.records) - len(keep_ids)} records in the gold audit; outside it "
                     f"{len(keep_ids)} records, {len(restricted(data.gold, keep_ids))} of {len(data.gold)} gold pairs")
    for row in rows:
        p, r, f1 = prf(row.predicted, data.gold)
        line: list[object] = [data.name, row.method, p, r, f1, round(row.seconds, 1), round(row.coverage, 4)]
        if keep_ids is not None:
            kp, kr, kf1 = prf(restricted(row.predicted, keep_ids), restricted(data.gold, keep_ids))
            line += [kf1, f"{kp} / {kr}"]
        else:
            line += ["", ""]
        out.append(line)
        print(" | ".join(map(str, line)), flush=True)
    return out, notes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA, help="the folder holding the er/ sets")
    parser.add_argument("--sets", default=",".join(LOADERS))
    parser.add_argument("--rare", type=int, default=100, help="Splink blocks on words at most this many records have")
    parser.add_argument("--u-pairs", type=float, default=2e6, help="Splink's random pairs for u")
    parser.add_argument("--pipe", type=Path, help=(
        "another two-source set in pyJedAI's layout (two |-separated files with an id column, gt.csv with the gold "
        "pairs), run after --sets (give --sets '' for it alone); with --name-column and --attr"))
    parser.add_argument("--files", help="with --pipe: its two record files, comma-separated (default: the two csv "
                                        "files other than gt.csv, in name order)")
    parser.add_argument("--name-column", default="name", help="with --pipe: the column that names a record")
    parser.add_argument("--attr", action="append", default=[], metavar="COLUMN=KIND", help=(
        f"with --pipe: an attribute column and its kind ({', '.join(KINDS)}); repeat for each"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sets = [LOADERS[key][0](args.data / LOADERS[key][1]) for key in args.sets.split(",") if key]
    if args.pipe is not None:
        kinds = dict(attr.split("=", 1) for attr in args.attr if "=" in attr)
        if len(kinds) != len(args.attr):
            parser.error("--attr takes COLUMN=KIND")
        files = tuple(args.files.split(",")) if args.files else None
        if files is not None and len(files) != 2:
            parser.error("--files takes the two record files, comma-separated")
        sets.append(pipe_set(args.pipe, args.name_column, kinds, files))
    rows, notes = [], []
    for data in sets:
        found, said = run_set(data, args.rare, args.u_pairs)
        rows += found
        notes += said
    body = ("Pairwise P/R/F1 of record pairs; seconds of each method alone (Splink: training, prediction and "
            "clustering); coverage: share of gold pairs the method's blocking compares. Other engineers share the "
            "2 cores; times are indicative. Targets (issue 21): Walmart-Amazon >= 0.75, Restaurants >= 0.95, "
            "DBLP-ACM >= 0.99, affiliations outside the audit >= 0.86. Outside audit: the same predictions and gold "
            "restricted to pairs of records that the set's gold audit does not list (affiliation strings: "
            "benchmarks/data/affiliations_gold_audit.tsv, records the gold files under another institution; "
            "Restaurants and Walmart-Amazon: benchmarks/make_er_audits.py's rules, records of cross-source pairs "
            "with the same phone and a shared name word, or the same model number and brand, that no gold pair "
            "holds); methods are compared on both scores.\n\n"
            + table(["set", "method", "P", "R", "F1", "seconds", "pair coverage", "F1 outside audit",
                     "P / R outside audit"], rows)
            + "\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    pipe = "" if args.pipe is None else (
        f" --pipe {args.pipe}" + (f" --files {args.files}" if args.files else "")
        + f" --name-column {args.name_column}" + "".join(f" --attr {attr}" for attr in args.attr))
    key = "er_vs_splink" if args.pipe is None else f"er_vs_splink_{args.pipe.name}"
    title = "Entity resolution: learned and fixed weights against Splink" + (
        "" if args.pipe is None else f" ({args.pipe.name})")
    write_section(key, title, body, f"python benchmarks/er_vs_splink.py --sets {args.sets} --rare {args.rare}{pipe}",
                  print_only=args.no_write)


if __name__ == "__main__":
    main()
