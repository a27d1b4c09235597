"""benchmarks/er_seed_aliases.py: the records are the seeds as ingest reads them, in the same order whatever the
hash seed, and the script scores fixed and learned weights on a seed file it is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = """@prefix ex: <http://example.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix schema: <http://schema.org/> .
ex:mit a schema:CollegeOrUniversity, schema:Organization ; rdfs:label "Massachusetts Institute of Technology" ;
    skos:altLabel "MIT", "M.I.T.", "Massachusetts Inst. of Technology" .
ex:bohr a schema:Person ; rdfs:label "Niels Bohr" ; skos:altLabel "N. Bohr", "Bohr", "Niels Henrik David Bohr" .
ex:cambridge a schema:Place ; rdfs:label "Cambridge" ; skos:altLabel "Cambridge, England" .
ex:cambridge_ma a schema:Place ; rdfs:label "Cambridge, Massachusetts" ; skos:altLabel "Cambridge, MA" .
ex:cam a schema:CollegeOrUniversity ; rdfs:label "University of Cambridge" ; skos:altLabel "Cambridge University" .
"""
SNIPPET = ("import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path; from er_seed_aliases import "
           "seed_records; r, g = seed_records(Path(sys.argv[1])); print([(x.id, x.name, x.type) for x in r], g)")


def _run(args: list[str], hash_seed: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_records_do_not_move_with_the_hash_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.ttl"
    seed.write_text(SEED, encoding="utf-8")
    outputs = {_run(["-c", SNIPPET, str(seed)], hash_seed).stdout for hash_seed in ("1", "2", "3")}
    assert len(outputs) == 1
    text = outputs.pop()
    assert "'M.I.T.'" in text and "'Cambridge, MA'" in text
    assert "http://schema.org/CollegeOrUniversity" in text   # the first type in sorted order


def test_the_script_scores_fixed_and_em_on_a_given_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.ttl"
    seed.write_text(SEED, encoding="utf-8")
    done = _run(["benchmarks/er_seed_aliases.py", str(seed), "--no-write"], "0")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| kgpipe")]
    assert [row.split("|")[1].strip() for row in rows] == ["kgpipe fixed", "kgpipe em"]
    assert "labels and aliases of 5 entities in seed.ttl" in done.stdout
