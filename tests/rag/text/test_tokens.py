"""bm25_tokens: English, Chinese, full-width and mixed text."""

from __future__ import annotations

import pytest

from rag.text.tokens import ENGLISH_STOPWORDS, bm25_tokens


def test_english_is_stemmed_and_stopwords_dropped() -> None:
    assert bm25_tokens("The indexes were rebuilt") == ["index", "were", "rebuilt"]
    assert bm25_tokens("Running runs run") == ["run", "run", "run"]
    assert bm25_tokens("the of and") == []
    assert "what" not in ENGLISH_STOPWORDS  # question words carry meaning


def test_case_punctuation_and_numbers() -> None:
    assert bm25_tokens("Hello, WORLD! Version 2.0 (beta_1)") == [
        "hello",
        "world",
        "version",
        "2",
        "0",
        "beta",
        "1",
    ]


def test_chinese_is_segmented_in_search_mode() -> None:
    tokens = bm25_tokens("中华人民共和国成立了")
    # Search mode keeps the long word and adds the words inside it.
    assert "中华人民共和国" in tokens
    assert {"中华", "人民", "共和国", "成立"} <= set(tokens)


def test_cjk_punctuation_is_dropped() -> None:
    assert bm25_tokens("你好，世界。「测试」《书名》！") == ["你好", "世界", "测试", "书名"]
    assert bm25_tokens("，。、；：？！…") == []


def test_full_width_forms_become_ascii() -> None:
    assert bm25_tokens("ＲＡＧ　Ｓｙｓｔｅｍ　１２３") == ["rag", "system", "123"]
    assert bm25_tokens("ＲＡＧ系统的检索") == ["rag", "系统", "的", "检索"]


def test_mixed_text_keeps_order() -> None:
    assert bm25_tokens("Running RAG on 中文文档 with iPhone15手机") == [
        "run",
        "rag",
        "中文",
        "文档",
        "iphone15",
        "手机",
    ]


def test_non_ascii_latin_words_stay_words() -> None:
    assert bm25_tokens("café résumé") == ["café", "résumé"]


def test_deterministic_and_empty() -> None:
    text = "北京大学的学生 study information retrieval 信息检索"
    assert bm25_tokens(text) == bm25_tokens(text)
    assert bm25_tokens("") == []
    assert bm25_tokens(" \n\t ...") == []


def test_tokens_never_hold_whitespace() -> None:
    # The catalog stores tokens joined by spaces and splits them again.
    tokens = bm25_tokens("多 个 空格\u3000和 tabs\there")
    assert all(t and not any(c.isspace() for c in t) for t in tokens)


def test_non_string_is_rejected() -> None:
    with pytest.raises(TypeError, match="text"):
        bm25_tokens(b"bytes")  # type: ignore[arg-type]


def test_traditional_and_simplified_give_the_same_tokens() -> None:
    assert bm25_tokens("臺灣的資訊系統與軟體開發") == bm25_tokens("台湾的资讯系统与软体开发")
    assert bm25_tokens("RAG系統的檢索") == ["rag", "系统", "的", "检索"]
    # Full-width letters and punctuation normalise too.
    assert bm25_tokens("ＲＡＧ系統，檢索！") == bm25_tokens("RAG系统,检索!")
