"""Prompt templates per language, numbered sources and packing by token count."""

from __future__ import annotations

import pytest

from rag.prompt import PromptBuilder, PromptTemplates, source_title
from rag.records import ChatMessage, RetrievedChunk
from rag.text.language import detect_language


def chunk(i: int, text: str, page: int | None = None, heading: str | None = None) -> RetrievedChunk:
    return RetrievedChunk(i, f"/docs/file{i}.pdf", text, page, heading, 0, len(text), 1.0, i)


def words(text: str) -> int:
    return len(text.split())


def test_language_detection() -> None:
    assert detect_language("How do I rotate the key?") == "en"
    assert detect_language("如何回滚发布？") == "zh"
    assert detect_language("deploy rollback 命令是什么？") == "zh"


@pytest.mark.parametrize("language", ["en", "zh"])
def test_templates_exist_for_each_language(language: str) -> None:
    templates = PromptTemplates.load(language)
    assert "{refusal}" in templates.user and "{sources}" in templates.user
    assert templates.user.rstrip().endswith("{question}") and templates.refusal
    with pytest.raises(ValueError, match="language"):
        PromptTemplates.load("fr")


def test_sources_are_numbered_with_titles_pages_and_headings() -> None:
    built = PromptBuilder(PromptTemplates.load("en")).build(
        "When?",
        [chunk(1, "Alpha text.", page=2, heading="Intro"), chunk(2, "Beta text.")],
        count_tokens=words,
        budget_tokens=1000,
    )
    [user] = built.messages
    assert user.role == "user"
    assert PromptTemplates.load("en").refusal in user.content and "[1]" in user.content
    assert user.content.startswith("[1] (file1.pdf, page 2, Intro) Alpha text.")
    assert "\n\n[2] (file2.pdf) Beta text." in user.content
    assert user.content.rstrip().endswith("Question: When?")
    assert [c.chunk_id for c in built.sources] == [1, 2] and built.dropped == 0


def test_packing_respects_the_token_budget_and_keeps_rank_order() -> None:
    chunks = [chunk(i, " ".join(["word"] * 100)) for i in range(1, 6)]
    built = PromptBuilder(PromptTemplates.load("en")).build(
        "q", chunks, count_tokens=words, budget_tokens=330
    )
    assert [c.chunk_id for c in built.sources] == [1, 2]
    assert built.dropped == 3 and built.prompt_tokens <= 330


def test_the_best_source_is_truncated_rather_than_dropped() -> None:
    long = ". ".join(f"sentence {i} has some words" for i in range(200)) + "."
    built = PromptBuilder(PromptTemplates.load("en")).build(
        "q", [chunk(1, long)], count_tokens=words, budget_tokens=150
    )
    assert len(built.sources) == 1
    assert built.messages[0].content.count("sentence") < 200 and "…" in built.messages[0].content


def test_chinese_prompt_and_condense() -> None:
    builder = PromptBuilder(PromptTemplates.load("zh"))
    built = builder.build(
        "怎么回滚？",
        [chunk(1, "回滚命令为 deploy rollback。", page=3)],
        count_tokens=len,
        budget_tokens=2000,
    )
    content = built.messages[0].content
    assert "第 3 页" in content and content.rstrip().endswith("问题：怎么回滚？")
    [message] = builder.condense_messages(
        "那它呢？", [ChatMessage("user", "部署流程是什么？"), ChatMessage("assistant", "先测试。")]
    )
    assert "用户: 部署流程是什么？" in message.content and "那它呢？" in message.content


def test_source_title() -> None:
    assert source_title("/a/b/部署指南.md") == "部署指南.md"
    assert source_title("langchain://42") == "42"
