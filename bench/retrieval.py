"""Retrieval quality: vector, keyword (BM25) and hybrid (fused by rank) search on a generated corpus.

    nice .venv/bin/python bench/retrieval.py [--seed 7] [--distractors 1500]
    (or a section of the suite: python -m bench --only retrieval)

The corpus is generated here, deterministically from the seed: facts a user would ask about —
part numbers, error codes, people's names, numbers — each in a passage of its own, hidden among
passages of the same shape about other parts, codes, people and places (so the words around a
fact never give it away) and among unrelated distractor passages. Each question names its answer
passage. A further set of facts is asked in other words than the passage uses (paraphrases): what
meaning finds and words miss. The search code is the site's own: the FAISS store with the real
MiniLM encoder (embeddings/store.py), the BM25 index and the rank fusion (embeddings/keyword.py),
with the candidate counts search uses (`hybrid_candidates`).

Reports recall@1, recall@5 and MRR@10 per mode, overall and per kind of question, and writes
bench/results/retrieval.json and bench/results/retrieval.md (the table the README shows).
Quality does not depend on the machine: a run gives the same figures anywhere (for one seed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embeddings.keyword import KeywordIndex, hybrid_candidates, rrf_fuse  # noqa: E402
from embeddings.store import EmbeddingStore, Encoder  # noqa: E402
from llmsite.model_store import resolve_encoder_folder  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MODES = ("vector", "keyword", "hybrid")
DEPTH = 10  # ranks looked at: MRR@10

FIRST = ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiroshi", "Ingrid", "Jonas", "Keiko"]
FIRST += ["Lars", "Mona", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Stefan", "Tomas", "Ursula", "Viktor"]
LAST = ["Albers", "Brandt", "Castell", "Dunmore", "Eriksen", "Fontaine", "Galloway", "Haddad", "Ibarra", "Jansen"]
LAST += ["Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quintero", "Rasmussen", "Santos", "Tanaka"]
TEAMS = ["billing", "search", "storage", "networking", "payments", "security", "mobile", "data platform", "support"]
CITIES = ["Lisbon", "Oslo", "Lyon", "Krakow", "Porto", "Graz", "Malmo", "Turin", "Ghent", "Bergen", "Leeds", "Brno"]
COMPONENTS = ["coolant pump", "drive belt", "pressure valve", "fan motor", "control board", "fuel filter", "gearbox"]
MACHINES = ["north press", "packing line", "boiler room", "paint shop", "cold store", "test rig", "loading dock"]
SYSTEMS = ["licence server", "backup agent", "payment gateway", "print spooler", "sync service", "mail relay"]
MEANINGS = [
    "the disk is full",
    "a certificate has expired",
    "the network timed out",
    "the password was rejected",
    "the queue is full",
    "a file is locked by another process",
    "the configuration could not be read",
    "the clock is out of sync",
]
FACILITIES = ["warehouse", "data centre", "cold store", "car park", "water tank", "lecture hall", "depot"]
UNITS = {
    "warehouse": "pallets",
    "data centre": "racks",
    "cold store": "tonnes",
    "car park": "cars",
    "water tank": "litres",
    "lecture hall": "seats",
    "depot": "buses",
}
# Facts asked in other words than the passage uses: meaning finds them, shared words barely.
PARAPHRASES = [
    ("The annual staff picnic takes place at Lakeside Park every June.", "Where is the yearly company outing held?"),
    ("Expense claims must be filed within thirty days of purchase.", "How long do I have to submit a reimbursement?"),
    ("The office dog, a beagle, naps under the reception desk.", "Where does our puppy sleep at work?"),
    ("Visitors park in the underground garage beneath building C.", "Where should guests leave their cars?"),
    ("New laptops are ordered through the hardware portal by your manager.", "How do I get a new computer?"),
    ("The canteen serves vegetarian lunches on Mondays and Thursdays.", "Which days have meat-free meals?"),
    ("Fire drills happen on the first Tuesday of each quarter.", "When do we practise evacuating the building?"),
    ("Parental leave lasts sixteen weeks at full pay.", "How much time off do new mothers and fathers get?"),
    ("The gym in the basement opens at six in the morning.", "When can I start exercising at the office?"),
    ("Lost badges are replaced by the security desk for a small fee.", "What do I do if I misplace my access card?"),
    ("Bicycles may be stored in the locked shed behind the car park.", "Where can I keep my bike?"),
    (
        "The quarterly all-hands meeting is streamed from the atrium.",
        "Where is the company-wide gathering broadcast from?",
    ),
    (
        "Remote workers receive a yearly allowance for home office furniture.",
        "Do people working from home get money for desks and chairs?",
    ),
    ("Printer toner is kept in the supply cupboard on the second floor.", "Where are the ink cartridges?"),
    ("Holiday requests need approval two weeks in advance.", "How early must I ask for vacation?"),
    ("The wifi password changes on the first of every month.", "How often is the wireless network key updated?"),
    ("Interns are paired with a mentor for their first three months.", "Do trainees get someone to guide them?"),
    ("Overtime is paid at one and a half times the normal rate.", "How much extra do I earn for working late?"),
    (
        "The rooftop terrace closes when wind speeds exceed forty kilometres an hour.",
        "When is the roof garden shut because of storms?",
    ),
    ("Company cars must be refuelled before they are returned.", "Do I need to fill up the pool vehicle's tank?"),
    (
        "Meeting rooms can be booked up to a month ahead in the calendar.",
        "How far in advance can I reserve a conference room?",
    ),
    ("The first aid kit hangs next to the kitchen sink.", "Where are the bandages and plasters?"),
    ("Coffee beans are delivered fresh every Wednesday morning.", "When does the espresso supply arrive?"),
    ("Employees may bring a guest to the winter party.", "Can I take my partner to the Christmas celebration?"),
    (
        "Night shifts end at six and are followed by a mandatory eleven-hour rest.",
        "How long must I rest after working overnight?",
    ),
    ("Broken chairs are collected by facilities on Fridays.", "Who takes away damaged furniture, and when?"),
    ("The library lends books for up to three weeks.", "How long can I borrow a novel?"),
    ("Smoking is only allowed in the shelter by the north gate.", "Where may I have a cigarette?"),
    ("Pay slips are published on the intranet on the twenty-fifth.", "When can I see my salary statement online?"),
    ("The server room is cooled to eighteen degrees.", "How cold is it where the computers are kept?"),
]
DISTRACTOR_SUBJECTS = ["The server", "The cache", "The river", "The garden", "The train", "The library", "The kitchen"]
DISTRACTOR_VERBS = ["stores", "explains", "replaces", "measures", "protects", "describes", "feeds", "moves"]
DISTRACTOR_OBJECTS = [
    "the nightly backups",
    "fresh tomatoes",
    "user sessions",
    "the weather",
    "old maps",
    "spare parts",
]
DISTRACTOR_PLACES = [
    "in Paris",
    "near the harbour",
    "on staging",
    "at midnight",
    "during the audit",
    "for the new team",
]


@dataclass(frozen=True)
class Question:
    text: str
    answer: int  # the passage's index in the corpus
    kind: str


def _code(rng: np.random.Generator, used: set[str], make) -> str:
    while True:
        code = make(rng)
        if code not in used:
            used.add(code)
            return code


def corpus(seed: int = 7, facts_per_kind: int = 250, distractors: int = 1500) -> tuple[list[str], list[Question]]:
    """(passages, questions): the same for the same arguments, on any machine."""
    rng = np.random.default_rng(seed)
    passages: list[str] = []
    questions: list[Question] = []
    used: set[str] = set()

    def add(passage: str, question: str, kind: str) -> None:
        questions.append(Question(question, len(passages), kind))
        passages.append(passage)

    def part(r) -> str:
        return f"{chr(65 + r.integers(26))}{chr(65 + r.integers(26))}-{r.integers(1000, 10000)}"

    def error(r) -> str:
        return f"E{r.integers(1000, 10000)}"

    for _ in range(facts_per_kind):
        code = _code(rng, used, part)
        component, machine = rng.choice(COMPONENTS), rng.choice(MACHINES)
        months = int(rng.integers(2, 37))
        add(
            f"Part {code} is the {component} of the {machine}; it is replaced every {months} months.",
            f"How often is part {code} replaced?",
            "part number",
        )
    for _ in range(facts_per_kind):
        code = _code(rng, used, error)
        add(
            f"Error {code} on the {rng.choice(SYSTEMS)} means {rng.choice(MEANINGS)}; restart it once fixed.",
            f"What does error {code} mean?",
            "error code",
        )
    names: set[str] = set()
    for _ in range(facts_per_kind):
        name = _code(rng, names, lambda r: f"{r.choice(FIRST)} {r.choice(LAST)}")
        team, city, year = rng.choice(TEAMS), rng.choice(CITIES), int(rng.integers(2005, 2026))
        add(
            f"{name} leads the {team} team in {city} and joined the company in {year}.",
            f"Which team does {name} lead?",
            "name",
        )
    places: set[str] = set()
    for _ in range(facts_per_kind):
        where = _code(rng, places, lambda r: f"{r.choice(FACILITIES)}|{r.choice(CITIES)}|{r.integers(1, 40)}")
        facility, city, number = where.split("|")
        capacity = int(rng.integers(100, 100_000))
        add(
            f"The {facility} number {number} in {city} holds up to {capacity} {UNITS[facility]}.",
            f"What is the capacity of {facility} number {number} in {city}?",
            "number",
        )
    for passage, question in PARAPHRASES:
        add(passage, question, "paraphrase")
    for i in range(distractors):
        passages.append(
            f"{rng.choice(DISTRACTOR_SUBJECTS)} {rng.choice(DISTRACTOR_VERBS)} {rng.choice(DISTRACTOR_OBJECTS)} "
            f"{rng.choice(DISTRACTOR_PLACES)} (note {i})."
        )
    # Shuffle so a passage's position says nothing about its kind.
    order = rng.permutation(len(passages))
    where = {int(old): new for new, old in enumerate(order)}
    shuffled = [passages[int(old)] for old in order]
    return shuffled, [Question(q.text, where[q.answer], q.kind) for q in questions]


def rankings(encoder: Encoder, passages: list[str], questions: list[Question]) -> dict[str, list[list[int]]]:
    """For each mode, each question's ranked passage ids (best first, at most DEPTH)."""
    store = EmbeddingStore.from_encoder(encoder)
    ids = list(range(1, len(passages) + 1))  # database ids start at 1
    store.add(ids, encoder.encode(passages))
    keywords = KeywordIndex()
    keywords.add(ids, passages)
    query_vectors = encoder.encode([q.text for q in questions])
    candidates = hybrid_candidates(DEPTH)
    out: dict[str, list[list[int]]] = {mode: [] for mode in MODES}
    for question, vector in zip(questions, query_vectors, strict=True):
        by_meaning = [hit.id - 1 for hit in store.search(vector, candidates)[0]]
        by_words = [hit.id - 1 for hit in keywords.search(question.text, candidates)]
        out["vector"].append(by_meaning[:DEPTH])
        out["keyword"].append(by_words[:DEPTH])
        out["hybrid"].append([doc_id for doc_id, _ in rrf_fuse([by_meaning, by_words])[:DEPTH]])
    return out


def scores(ranked: list[list[int]], questions: list[Question]) -> dict[str, float]:
    """recall@1, recall@5 and MRR@10 of these rankings."""
    firsts = [
        ranking.index(q.answer) + 1 if q.answer in ranking else None
        for ranking, q in zip(ranked, questions, strict=True)
    ]
    n = len(questions)
    return {
        "recall@1": round(sum(r == 1 for r in firsts) / n, 4),
        "recall@5": round(sum(r is not None and r <= 5 for r in firsts) / n, 4),
        "mrr@10": round(sum(1 / r for r in firsts if r is not None) / n, 4),
        "questions": n,
    }


def measure(seed: int = 7, facts_per_kind: int = 250, distractors: int = 1500) -> dict:
    started = time.perf_counter()
    passages, questions = corpus(seed, facts_per_kind, distractors)
    encoder = Encoder(resolve_encoder_folder("all-MiniLM-L6-v2"), name="all-MiniLM-L6-v2", device="cpu")
    ranked = rankings(encoder, passages, questions)
    kinds = sorted({q.kind for q in questions})
    result: dict = {
        "seed": seed,
        "passages": len(passages),
        "questions": len(questions),
        "encoder": encoder.name,
        "overall": {mode: scores(ranked[mode], questions) for mode in MODES},
        "by_kind": {},
    }
    for kind in kinds:
        picked = [i for i, q in enumerate(questions) if q.kind == kind]
        subset = [questions[i] for i in picked]
        result["by_kind"][kind] = {mode: scores([ranked[mode][i] for i in picked], subset) for mode in MODES}
    overall = result["overall"]
    result["hybrid_beats_vector_at_5"] = overall["hybrid"]["recall@5"] > overall["vector"]["recall@5"]
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def markdown(result: dict) -> str:
    lines = [
        f"{result['passages']} passages, {result['questions']} questions (seed {result['seed']}, "
        f"encoder {result['encoder']}).",
        "",
        "| mode | recall@1 | recall@5 | MRR@10 |",
        "|---|---:|---:|---:|",
    ]
    for mode in MODES:
        row = result["overall"][mode]
        lines.append(f"| {mode} | {row['recall@1']:.3f} | {row['recall@5']:.3f} | {row['mrr@10']:.3f} |")
    lines += ["", "recall@5 by kind of question:", "", "| kind | questions | " + " | ".join(MODES) + " |"]
    lines.append("|---|---:|" + "---:|" * len(MODES))
    for kind, rows in result["by_kind"].items():
        cells = " | ".join(f"{rows[mode]['recall@5']:.3f}" for mode in MODES)
        lines.append(f"| {kind} | {rows['vector']['questions']} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--facts", type=int, default=250, help="facts of each kind (part numbers, codes, ...)")
    parser.add_argument("--distractors", type=int, default=1500)
    args = parser.parse_args(argv)
    result = measure(args.seed, args.facts, args.distractors)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrieval.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / "retrieval.md").write_text("# Retrieval quality\n\n" + table)
    print(table)
    return result


if __name__ == "__main__":
    main()
