"""Citation parsing, validation, span quoting and attribution, in English and Chinese."""

from __future__ import annotations

import pytest

from rag.cite import Citer, is_refusal, split_sentences, supporting_span
from rag.prompt import PromptTemplates
from rag.records import RetrievedChunk

REFUSAL_EN = PromptTemplates.load("en").refusal
REFUSAL_ZH = PromptTemplates.load("zh").refusal


def chunk(chunk_id: int, source: str, text: str, page: int | None = None) -> RetrievedChunk:
    return RetrievedChunk(
        chunk_id=chunk_id,
        source=source,
        text=text,
        page=page,
        heading="H",
        char_start=0,
        char_end=len(text),
        score=1.0 / chunk_id,
        rank=chunk_id,
    )


SOURCES = [
    chunk(
        1, "/d/keys.md", "Keys are stored in the vault. The signing key is rotated every 90 days."
    ),
    chunk(
        2, "/d/backup.md", "Backups run nightly at 02:00 UTC. They are kept for 35 days.", page=3
    ),
]


def test_markers_map_to_sources_and_quote_the_supporting_sentence() -> None:
    result = Citer().cite(
        "The signing key is rotated every 90 days [1].", SOURCES, refusal=REFUSAL_EN
    )
    assert not result.refused and result.supported
    [citation] = result.citations
    assert (citation.n, citation.chunk_id, citation.source) == (1, 1, "/d/keys.md")
    assert citation.text == "The signing key is rotated every 90 days."
    assert citation.inferred is False


def test_invalid_markers_are_dropped_and_reported() -> None:
    result = Citer().cite(
        "Backups are kept 35 days [2][7]. Also [0, 2].", SOURCES, refusal=REFUSAL_EN
    )
    assert result.invalid_markers == (0, 7)
    assert [c.n for c in result.citations] == [2]
    assert "[7]" not in result.text and "[2]" in result.text
    assert result.citations[0].page == 3


def test_marker_variants() -> None:
    result = Citer().cite("Rotated every 90 days [1, 2]. 【2】", SOURCES, refusal=REFUSAL_EN)
    assert [c.n for c in result.citations] == [1, 2]


def test_answer_without_markers_is_attributed_when_a_source_supports_it() -> None:
    result = Citer().cite("Backups run nightly at 02:00 UTC.", SOURCES, refusal=REFUSAL_EN)
    assert [c.n for c in result.citations] == [2]
    assert result.citations[0].inferred is True
    assert result.supported


def test_unsupported_answer_gets_no_citation() -> None:
    result = Citer().cite("Penguins live in Antarctica.", SOURCES, refusal=REFUSAL_EN)
    assert result.citations == () and not result.supported and not result.refused


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        (REFUSAL_EN, REFUSAL_EN),
        ("The sources do not contain the answer.", REFUSAL_EN),
        ("  the sources do not contain the answer to this question", REFUSAL_EN),
        (REFUSAL_ZH, REFUSAL_ZH),
        ("资料中没有提到这个。", REFUSAL_ZH),
        ("", REFUSAL_EN),
    ],
)
def test_refusals_are_recognised(answer: str, refusal: str) -> None:
    assert is_refusal(answer, refusal)
    result = Citer().cite(answer, SOURCES, refusal=refusal)
    assert result.refused and result.citations == () and result.text == refusal


def test_a_normal_answer_is_not_a_refusal() -> None:
    assert not is_refusal("The key is rotated every 90 days [1].", REFUSAL_EN)


def test_chinese_citations_and_spans() -> None:
    sources = [
        chunk(5, "/d/部署指南.md", "每次发布前必须完成冒烟测试。回滚命令为 deploy rollback。"),
        chunk(6, "/d/休假.md", "每位员工每年享有十五天带薪年假。"),
    ]
    result = Citer().cite("回滚命令是 deploy rollback[1]。", sources, refusal=REFUSAL_ZH)
    assert [c.chunk_id for c in result.citations] == [5]
    assert result.citations[0].text == "回滚命令为 deploy rollback。"
    inferred = Citer().cite("员工每年享有十五天带薪年假。", sources, refusal=REFUSAL_ZH)
    assert [c.chunk_id for c in inferred.citations] == [6] and inferred.citations[0].inferred


def test_sentence_split_and_span_fallback() -> None:
    assert split_sentences("One. Two! 三。四？\nfive") == ["One.", "Two!", "三。", "四？", "five"]
    assert supporting_span("unrelated words", "Alpha beta.") == "Alpha beta."


def test_bad_min_support() -> None:
    with pytest.raises(ValueError, match="min_support"):
        Citer(min_support=0)


def test_a_looping_answer_is_cut_at_the_first_repeat() -> None:
    looping = "The key is rotated every 90 days [1]. The vault is safe. The vault is safe. The"
    result = Citer().cite(looping, SOURCES, refusal=REFUSAL_EN)
    assert result.text == "The key is rotated every 90 days [1]. The vault is safe."


def test_every_claim_gets_its_own_supporting_sentence_in_the_quote() -> None:
    answer = "Keys are stored in the vault. The signing key is rotated every 90 days."
    result = Citer().cite(answer, SOURCES, refusal=REFUSAL_EN)
    [citation] = result.citations
    assert citation.inferred and citation.n == 1
    assert citation.text == SOURCES[0].text
    only_rotation = Citer().cite("It is rotated every 90 days [1].", SOURCES, refusal=REFUSAL_EN)
    assert only_rotation.citations[0].text == "The signing key is rotated every 90 days."


def test_a_marker_on_a_sentence_its_source_does_not_support_is_dropped() -> None:
    result = Citer().cite(
        "Penguins are birds [2]. The key is rotated every 90 days [1].",
        SOURCES,
        refusal=REFUSAL_EN,
    )
    assert [c.n for c in result.citations] == [1] and result.invalid_markers == (2,)
