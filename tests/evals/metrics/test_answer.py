"""Answer and grounding metrics against hand-checked examples in both languages.

The expected numbers were worked out by hand with the official definitions: SQuAD v1.1's
``evaluate-v1.1.py`` (normalize, bag-of-tokens F1) and CMRC 2018's ``cmrc2018_evaluate.py``
(mixed segmentation, longest-common-substring F1, punctuation-free EM).
"""

from __future__ import annotations

import pytest

from evals.metrics import answer as metrics


@pytest.mark.parametrize(
    ("prediction", "answers", "em", "f1"),
    [
        # Articles, case and punctuation are ignored by SQuAD's normalization.
        ("The Eiffel Tower!", ["Eiffel Tower"], 1.0, 1.0),
        # 2 shared tokens, prediction 3 tokens, reference 2: P=2/3, R=1, F1=0.8.
        ("Denver Broncos won", ["Denver Broncos"], 0.0, 0.8),
        # Best over references: the second reference matches exactly.
        ("Santa Clara", ["Levi's Stadium", "Santa Clara, California", "Santa Clara"], 1.0, 1.0),
        # Bag of tokens: order does not matter for F1, but it does for EM.
        ("Broncos Denver", ["Denver Broncos"], 0.0, 1.0),
        # Repeated tokens count once per occurrence (Counter intersection): P=1/2, R=1.
        ("paris paris", ["Paris"], 0.0, 2 / 3),
        ("", ["Paris"], 0.0, 0.0),
        ("the", ["a"], 1.0, 0.0),  # both normalize to empty: EM 1, F1 0 as in SQuAD's script
    ],
)
def test_squad_em_and_f1_match_the_official_definition(
    prediction: str, answers: list[str], em: float, f1: float
) -> None:
    assert metrics.exact_match(prediction, answers) == em
    assert metrics.token_f1(prediction, answers) == pytest.approx(f1)


@pytest.mark.parametrize(
    ("prediction", "answers", "em", "f1"),
    [
        ("北京大学。", ["北京大学"], 1.0, 1.0),  # punctuation removed for EM
        # 7 characters against 4, longest common substring 4: P=4/7, R=1, F1=8/11.
        ("在北京大学读书", ["北京大学"], 0.0, 8 / 11),
        # Common characters that are not contiguous do not count: LCS is "大学" (2).
        ("大学北京", ["北京大学"], 0.0, 0.5),
        # English words inside Chinese stay whole tokens: 清华 + "tsinghua" vs 清华.
        ("清华 Tsinghua", ["清华"], 0.0, 2 * (2 / 3) * 1 / (2 / 3 + 1)),
        ("１９９８年", ["1998年"], 1.0, 1.0),  # full-width digits are the same answer
        ("上海", ["北京"], 0.0, 0.0),
    ],
)
def test_cmrc_character_level_em_and_f1(
    prediction: str, answers: list[str], em: float, f1: float
) -> None:
    assert metrics.exact_match(prediction, answers, "zh") == em
    assert metrics.token_f1(prediction, answers, "zh") == pytest.approx(f1)


def test_whitespace_tokenization_would_score_chinese_zero_but_ours_does_not() -> None:
    # A correct partial answer: the English path sees one "word" each and scores 0.
    assert metrics.token_f1("位于北京市", ["北京"], "en") == 0.0
    assert metrics.token_f1("位于北京市", ["北京"], "zh") == pytest.approx(2 * 0.4 / 1.4)


def test_cmrc_tokens_split_characters_and_keep_latin_runs() -> None:
    assert metrics.cmrc_tokens("iPhone 15于2023年发布") == [
        "iphone",
        "15",
        "于",
        "2023",
        "年",
        "发",
        "布",
    ]


def test_contains_credits_a_sentence_that_holds_the_answer() -> None:
    assert metrics.contains_answer("It was founded by Brewster Kahle.", ["Brewster Kahle"]) == 1.0
    # Whole words only: "Kahle" alone is not "Brewster Kahle", and "art" is not in "party".
    assert metrics.contains_answer("Kahle", ["Brewster Kahle"]) == 0.0
    assert metrics.contains_answer("a party", ["art"]) == 0.0
    assert metrics.contains_answer("它位于北京市海淀区。", ["北京市"], "zh") == 1.0


def test_rouge_l_english_and_chinese() -> None:
    # LCS of "the cat sat" vs "the cat sat on the mat": 3 of 3 and 3 of 6 tokens.
    assert metrics.rouge_l("the cat sat", ["the cat sat on the mat"]) == pytest.approx(
        2 * 1 * 0.5 / 1.5
    )
    # Chinese ROUGE-L counts characters (the default tokenizer would drop them all).
    assert metrics.rouge_l("北京大学", ["北京大学"], "zh") == pytest.approx(1.0)
    assert metrics.rouge_l("北京", ["北京大学"], "zh") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert metrics.rouge_l("", ["北京"], "zh") == 0.0


def test_corpus_bleu_is_one_for_identical_text_and_uses_the_chinese_tokenizer() -> None:
    sentence = "the quick brown fox jumps over the lazy dog"
    assert metrics.corpus_bleu([sentence], [[sentence]]) == pytest.approx(1.0)
    assert metrics.corpus_bleu(["completely different words here"], [[sentence]]) < 0.1
    chinese = "北京是中华人民共和国的首都"
    assert metrics.corpus_bleu([chinese], [[chinese]], "zh") == pytest.approx(1.0)
    # Different numbers of references per question are allowed.
    two = metrics.corpus_bleu([sentence, sentence], [[sentence], [sentence, "other"]])
    assert two == pytest.approx(1.0)
    assert metrics.corpus_bleu([], []) == 0.0


def test_faithfulness_counts_supported_content_words() -> None:
    support = ["The Internet Archive was founded by Brewster Kahle in 1996."]
    # "founded", "brewster", "kahle" are in the source, "google" is not; "it" is a stop word.
    assert metrics.faithfulness("Brewster Kahle founded Google.", support) == pytest.approx(3 / 4)
    assert metrics.faithfulness("Brewster Kahle, 1996", support) == 1.0
    assert metrics.faithfulness("Steve Jobs in 1976", support) == 0.0
    # Nothing to score is None, not 0 and not NaN.
    assert metrics.faithfulness("", support) is None
    assert metrics.faithfulness("the of a", support) is None
    assert metrics.faithfulness("位于北京", ["该校位于北京市。"], "zh") == 1.0


def test_evidence_matches_needs_the_answer_and_the_gold_passage() -> None:
    evidence = (
        "The Wayback Machine is a digital archive of the World Wide Web. It was launched "
        "in 2001 by the Internet Archive, a nonprofit based in San Francisco."
    )
    chunk_inside = "It was launched in 2001 by the Internet Archive"
    assert metrics.evidence_matches(chunk_inside, evidence, ["2001"])
    other_article = "The festival was launched in 2001 in Berlin by a group of artists."
    assert not metrics.evidence_matches(other_article, evidence, ["2001"])
    # A longer chunk that overlaps the passage by a run of words and holds the answer.
    longer = "Intro text. " + evidence + " More text follows here about other things."
    assert metrics.evidence_matches(longer, evidence, ["2001"])
    # Without a known passage, holding the answer is enough.
    assert metrics.evidence_matches(other_article, None, ["2001"])
    assert not metrics.evidence_matches(other_article, None, ["1999"])
