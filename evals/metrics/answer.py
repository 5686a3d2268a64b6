"""Answer and grounding metrics, in English and Chinese.

* English: exact match and token F1 after SQuAD v1.1's normalization (lower case, no
  punctuation, no articles), as its official ``evaluate-v1.1.py`` computes them.
* Chinese: CMRC 2018's evaluation: Chinese characters and punctuation are single tokens,
  runs of Latin letters and digits are words; F1 is taken on the longest common substring
  of the two token sequences and EM compares the texts with punctuation removed.
  Whitespace tokenization would score every Chinese answer 0.
* ROUGE-L (rouge-score; characters as tokens for Chinese), corpus BLEU (sacrebleu,
  ``tokenize="zh"`` for Chinese).
* ``contains``: the normalized reference appears inside the normalized prediction, which
  credits a generative model's correct sentence that EM would mark wrong.
* Grounding: citation precision/recall against the gold evidence and a faithfulness
  score (share of the answer's content tokens found in the cited text), computed
  offline with no external judge.

All scores are in 0..1 and take the best over a question's reference answers.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence

from rag.text.language import HAN_CHAR

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_CJK_CHAR = HAN_CHAR  # the platform's one CJK rule
# CMRC 2018's evaluation script removes these besides ASCII punctuation.
_CMRC_PUNCTUATION = frozenset(
    "-:_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』" + string.punctuation
)
#: English words that carry no content (faithfulness ignores them, synth trims them).
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "which",
        "who",
        "whom",
        "what",
        "when",
        "where",
        "why",
        "how",
        "than",
        "then",
        "there",
        "their",
        "they",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "i",
        "not",
        "no",
    ]
)


# -- normalization -------------------------------------------------------------------------


def normalize_answer(text: str) -> str:
    """SQuAD v1.1's normalization: lower case, punctuation and articles removed."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def cmrc_tokens(text: str) -> list[str]:
    """Split text the way CMRC 2018's evaluation does (mixed segmentation).

    Each CJK character or punctuation mark is a token; other runs (English words,
    numbers) stay whole; everything is lower-cased.
    """
    tokens: list[str] = []
    run = ""
    for ch in unicodedata.normalize("NFKC", text).lower():
        if _CJK_CHAR.match(ch) or ch in _CMRC_PUNCTUATION:
            tokens.extend(run.split())
            run = ""
            tokens.append(ch)
        else:
            run += ch
    tokens.extend(run.split())
    return tokens


def _cmrc_strip(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if ch not in _CMRC_PUNCTUATION and not ch.isspace())


# -- answer metrics ------------------------------------------------------------------------


def exact_match(prediction: str, answers: Sequence[str], language: str = "en") -> float:
    """1.0 when the prediction equals a reference after normalization, else 0.0."""
    if not answers:
        return 0.0
    if language == "zh":
        got = _cmrc_strip(prediction)
        return float(any(got == _cmrc_strip(a) for a in answers))
    got = normalize_answer(prediction)
    return float(any(got == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str], language: str = "en") -> float:
    """Token F1 (SQuAD) or longest-common-substring F1 over CMRC tokens (Chinese)."""
    if not answers:
        return 0.0
    return max(_f1_one(prediction, answer, language) for answer in answers)


def _f1_one(prediction: str, answer: str, language: str) -> float:
    if language == "zh":
        pred = [t for t in cmrc_tokens(prediction) if t not in _CMRC_PUNCTUATION]
        gold = [t for t in cmrc_tokens(answer) if t not in _CMRC_PUNCTUATION]
        common = _longest_common_substring(pred, gold)
    else:
        pred = normalize_answer(prediction).split()
        gold = normalize_answer(answer).split()
        common = sum((Counter(pred) & Counter(gold)).values())
    if not pred or not gold or common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest contiguous run shared by two token sequences."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def contains_answer(prediction: str, answers: Sequence[str], language: str = "en") -> float:
    """1.0 when a normalized reference occurs inside the normalized prediction."""
    if language == "zh":
        got = _cmrc_strip(prediction)
        return float(any(_cmrc_strip(a) and _cmrc_strip(a) in got for a in answers))
    got = f" {normalize_answer(prediction)} "
    return float(any(normalize_answer(a) and f" {normalize_answer(a)} " in got for a in answers))


class _CharTokenizer:
    """rouge-score tokenizer for Chinese: every non-space character is a token."""

    def tokenize(self, text: str) -> list[str]:
        return [t for t in cmrc_tokens(text) if t not in _CMRC_PUNCTUATION]


def rouge_l(prediction: str, answers: Sequence[str], language: str = "en") -> float:
    """ROUGE-L F-measure (best over references); character tokens for Chinese."""
    from rouge_score import rouge_scorer

    if not answers or not prediction.strip():
        return 0.0
    if language == "zh":
        scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CharTokenizer())
    else:
        scorer = rouge_scorer.RougeScorer(["rougeL"])
    return max(float(scorer.score(answer, prediction)["rougeL"].fmeasure) for answer in answers)


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]], language: str = "en"
) -> float:
    """Corpus BLEU from sacrebleu, in 0..1 (``tokenize="zh"`` for Chinese).

    Questions have different numbers of references; shorter lists repeat their first
    reference, which sacrebleu's parallel reference streams require and which does not
    change the score.
    """
    import sacrebleu

    pairs = [(p, list(r)) for p, r in zip(predictions, references, strict=True) if r]
    if not pairs:
        return 0.0
    width = max(len(r) for _, r in pairs)
    streams = [[r[i] if i < len(r) else r[0] for _, r in pairs] for i in range(width)]
    tokenize = "zh" if language == "zh" else "13a"
    bleu = sacrebleu.corpus_bleu([p for p, _ in pairs], streams, tokenize=tokenize)
    # sacrebleu's score is a percentage; a perfect match can come back as 100.00000000000004.
    return min(1.0, float(bleu.score) / 100.0)


# -- grounding -----------------------------------------------------------------------------


def content_tokens(text: str, language: str = "en") -> list[str]:
    """The tokens that carry content, without stop words or punctuation.

    For Chinese these are CJK characters (and any Latin words mixed in).
    """
    if language == "zh":
        return [t for t in cmrc_tokens(text) if t not in _CMRC_PUNCTUATION]
    words = normalize_answer(text).split()
    return [w for w in words if w not in STOPWORDS]


def faithfulness(answer: str, support: Sequence[str], language: str = "en") -> float | None:
    """Share of the answer's content tokens that occur in the supporting text.

    None when the answer has no content tokens (an empty answer or a refusal is not
    scored). Unigram support is a lenient, offline proxy: a claim stitched together from
    words of the source passes, an invented name or number fails.
    """
    tokens = content_tokens(answer, language)
    if not tokens:
        return None
    available = set(content_tokens(" ".join(support), language))
    return sum(t in available for t in tokens) / len(tokens)


def evidence_matches(chunk_text: str, evidence: str | None, answers: Sequence[str]) -> bool:
    """Whether a retrieved or cited chunk holds the gold evidence.

    A chunk counts when it contains a reference answer and overlaps the evidence passage
    (shares a run of 8 words with it, or lies inside it); without a known passage, when it
    contains a reference answer.
    """
    chunk_norm = " ".join(chunk_text.split())
    has_answer = any(a.strip() and " ".join(a.split()) in chunk_norm for a in answers)
    if evidence is None:
        return has_answer
    evidence_norm = " ".join(evidence.split())
    if chunk_norm and chunk_norm in evidence_norm:
        return True
    return has_answer and _shares_run(chunk_norm, evidence_norm)


def _shares_run(a: str, b: str, width: int = 8) -> bool:
    if _CJK_CHAR.search(a):
        grams_a = {a[i : i + width * 2] for i in range(max(1, len(a) - width * 2 + 1))}
        return any(g in b for g in grams_a)
    words = a.split()
    if len(words) < width:
        return a in b
    return any(" ".join(words[i : i + width]) in b for i in range(len(words) - width + 1))
