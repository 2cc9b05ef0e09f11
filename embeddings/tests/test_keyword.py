"""Keyword search (BM25) and reciprocal rank fusion, in plain Python: a small fixed corpus, exact expectations."""

from __future__ import annotations

import pytest

from embeddings.keyword import RRF_K, KeywordIndex, rrf_fuse, tokenize

CORPUS = {
    1: "Replace the coolant pump XK-4471 when the pressure drops below 2 bar.",
    2: "Error E1042 means the licence server did not answer in time.",
    3: "The coolant system holds twelve litres of fluid.",
    4: "Quarterly report: revenue grew by four percent.",
}


@pytest.fixture
def index() -> KeywordIndex:
    keywords = KeywordIndex()
    keywords.add(list(CORPUS), list(CORPUS.values()))
    return keywords


def test_tokens_are_lower_case_words_and_numbers_without_stop_words():
    assert tokenize("The pump XK-4471 and error E1042") == ["pump", "xk", "4471", "error", "e1042"]
    assert tokenize("Vault 2, room 3.14, plan B") == ["vault", "2", "room", "3", "14", "plan"]


def test_it_finds_a_part_number_and_an_error_code_by_their_words(index):
    assert [hit.id for hit in index.search("XK-4471", 3)] == [1]
    assert index.search("what does e1042 mean", 3)[0].id == 2


def test_a_one_digit_number_picks_its_passage_among_look_alikes():
    vaults = KeywordIndex()
    vaults.add([1, 2, 3], [f"The access code for vault {n} is {7000 + n * 13}." for n in (1, 2, 3)])
    assert vaults.search("access code for vault 2", 3)[0].id == 2


def test_it_ranks_by_bm25_and_returns_only_rows_sharing_a_word(index):
    hits = index.search("coolant pump", 10)
    # Row 1 has both words, row 3 only "coolant"; rows 2 and 4 share none and are left out.
    assert [hit.id for hit in hits] == [1, 3]
    assert hits[0].score > hits[1].score > 0
    assert index.search("zebra", 5) == [] and index.search("the and of", 5) == []


def test_it_searches_only_the_allowed_rows(index):
    assert [hit.id for hit in index.search("coolant", 5, allowed_ids=[3, 4])] == [3]
    assert index.search("coolant", 5, allowed_ids=[2, 4]) == []
    assert index.search("coolant", 5, allowed_ids=[]) == []


def test_writes_are_seen_by_the_next_search(index):
    # The shorter row ranks first for a word both have once (BM25 normalises by length).
    assert [hit.id for hit in index.search("coolant", 5)] == [3, 1]
    assert index.remove([1, 99]) == 1
    assert [hit.id for hit in index.search("coolant", 5)] == [3]
    index.add([5], ["Coolant coolant coolant: the coolant manual."])
    assert [hit.id for hit in index.search("coolant", 5)] == [5, 3]
    index.replace_all([7], ["a coolant leak"])
    assert index.ids() == {7} and [hit.id for hit in index.search("coolant", 5)] == [7]
    index.replace_all([], [])
    assert len(index) == 0 and index.search("coolant", 5) == []


def test_it_refuses_a_k_below_one(index):
    with pytest.raises(ValueError):
        index.search("coolant", 0)


def test_fusion_sums_reciprocal_ranks():
    fused = rrf_fuse([[10, 20, 30], [30, 40]])
    scores = dict(fused)
    assert scores[30] == pytest.approx(1 / (RRF_K + 3) + 1 / (RRF_K + 1))
    assert scores[10] == pytest.approx(1 / (RRF_K + 1))
    assert scores[40] == pytest.approx(1 / (RRF_K + 2))
    # Found by both rankings beats first place in one.
    assert [doc_id for doc_id, _ in fused] == [30, 10, 20, 40]


def test_fusion_breaks_ties_by_the_best_rank_then_the_first_ranking():
    # 1 and 2 both score 1/(k+1) + nothing; 1 is first in the first ranking, 2 first in the second.
    assert [doc_id for doc_id, _ in rrf_fuse([[1], [2]])] == [1, 2]
    assert [doc_id for doc_id, _ in rrf_fuse([[2], [1]])] == [2, 1]
    assert rrf_fuse([[], []]) == []
