"""The train/test split: no test question is ever seen in training."""

from __future__ import annotations

import pytest

from evals.datasets import QAExample
from evals.errors import DatasetError
from evals.split import question_key, split_by_question


def _examples(n: int) -> list[QAExample]:
    return [QAExample(f"q{i}", f"Question number {i}?", (f"a{i}",), "doc", None) for i in range(n)]


def test_no_question_text_is_on_both_sides() -> None:
    examples = _examples(40)
    # The same question asked twice (SQuAD has such repeats) with different ids and case.
    examples.append(QAExample("dup-1", "QUESTION number 3 ?", ("a3",), "doc", None))
    examples.append(QAExample("dup-2", "question  number 3?", ("a3",), "doc", None))
    unanswerable = QAExample("u1", "Unrelated?", (), None, None, answerable=False)
    split = split_by_question([*examples, unanswerable], test_fraction=0.5, seed=4)
    train_keys = {question_key(e.question) for e in split.train}
    test_keys = {question_key(e.question) for e in split.test}
    assert not train_keys & test_keys
    assert {e.qid for e in split.train} | {e.qid for e in split.test} == {
        e.qid for e in [*examples, unanswerable]
    }
    # Unanswerable questions are only ever tested.
    assert unanswerable in split.test and unanswerable not in split.train
    # Repeats stay together.
    repeats = [
        e for e in split.train + split.test if question_key(e.question) == "question number 3"
    ]
    assert len(repeats) == 3
    assert len({e in split.test for e in repeats}) == 1


def test_split_is_seeded_and_sized() -> None:
    a = split_by_question(_examples(30), test_fraction=2 / 3, seed=1)
    b = split_by_question(_examples(30), test_fraction=2 / 3, seed=1)
    c = split_by_question(_examples(30), test_fraction=2 / 3, seed=2)
    assert a == b and a != c
    assert (len(a.train), len(a.test)) == (10, 20)
    everything = split_by_question(_examples(5), test_fraction=1.0)
    assert everything.train == () and len(everything.test) == 5


def test_question_key_ignores_width_case_and_punctuation() -> None:
    assert question_key("北京在哪里？") == question_key("北京在哪里?")
    assert question_key("Ｗｈｏ  IS he?") == question_key("who is he")


def test_impossible_splits_are_errors() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        split_by_question(_examples(4), test_fraction=0.0)
    with pytest.raises(DatasetError, match="ask for more questions"):
        split_by_question(_examples(1), test_fraction=0.5)
