"""The one language rule: CJK characters, the CJK share and the en/zh decision."""

from __future__ import annotations

import pytest

from rag.text.language import (
    CJK_CHAR,
    HAN_CHAR,
    WIDE_CHAR,
    cjk_share,
    detect_language,
)


def test_character_classes_nest() -> None:
    assert HAN_CHAR.fullmatch("中") and HAN_CHAR.fullmatch("\U00020000")
    assert not HAN_CHAR.fullmatch("の") and not HAN_CHAR.fullmatch("한")
    assert CJK_CHAR.fullmatch("の") and CJK_CHAR.fullmatch("한") and CJK_CHAR.fullmatch("中")
    assert not CJK_CHAR.fullmatch("，")
    assert WIDE_CHAR.fullmatch("，") and WIDE_CHAR.fullmatch("中")
    for ch in "aZ9 .é":
        assert not WIDE_CHAR.fullmatch(ch)


def test_cjk_share_weighs_a_character_like_a_word() -> None:
    assert cjk_share("北京是中国的首都") == 1.0
    assert cjk_share("The key is rotated.") == 0.0
    assert cjk_share("") == 0.0
    assert cjk_share("RAG 系统") == pytest.approx(2 / 3)
    assert cjk_share("日本語のテキスト") == 1.0
    with pytest.raises(TypeError, match="text"):
        cjk_share(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I rotate the key?", "en"),
        ("如何回滚发布？", "zh"),
        ("deploy rollback 命令是什么？", "zh"),
        ("a b 中国", "zh"),  # a tie goes to Chinese
        ("a b c 中国", "en"),
        ("", "en"),
        ("12345 !!!", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_callers_share_the_rule() -> None:
    import evals.datasets
    import ingest.language
    import rag.chain

    # They use the one rule rather than keeping copies of their own.
    assert ingest.language.cjk_share is cjk_share
    assert rag.chain.detect_language is detect_language
    assert evals.datasets.detect_language is detect_language


def test_kana_and_hangul_are_east_asian_but_not_chinese() -> None:
    # The multilingual embedder reads them (cjk_share), but Chinese prompt templates
    # would answer a Japanese or Korean question in the wrong language.
    assert cjk_share("バックアップはいつですか") == 1.0
    assert detect_language("バックアップはいつですか") == "en"
    assert detect_language("백업은 언제입니까") == "en"
    assert detect_language("备份保留多久？") == "zh"
