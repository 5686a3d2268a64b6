"""Choosing a new base's embedding model by the language of its first documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.document import Element, ParsedDocument
from ingest.language import sniff_cjk_share
from ingest.load.loader import DocumentLoader
from ingest.pipeline import IngestPipeline
from rag.config import DEFAULT_EMBEDDING_MODEL, Settings
from rag.embed.multilingual import MULTILINGUAL_MODEL
from rag.errors import ConfigError
from rag.store.knowledge_bases import KnowledgeBases
from rag.text.language import cjk_share
from tests.fakes import HashEmbedder

ZH = "北京是中华人民共和国的首都，也是全国的政治、文化和国际交往中心。" * 3
EN = "The signing key is rotated every ninety days by the security team. " * 3


def test_cjk_share() -> None:
    assert cjk_share(ZH) == 1.0
    assert cjk_share(EN) == 0.0
    assert cjk_share("") == 0.0
    # One CJK character weighs like one English word.
    assert cjk_share("RAG 系统") == pytest.approx(2 / 3)
    assert cjk_share("日本語のテキスト") == 1.0


def _pipeline(settings: Settings, kbs: KnowledgeBases) -> IngestPipeline:
    # Deterministic vectors of the right size for each model: this is about choosing.
    return IngestPipeline(settings, kbs, embedder_factory=lambda model: HashEmbedder(384, model))


def _folder(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for i in range(3):
        (folder / f"{name}-{i}.txt").write_text(f"{i} {text}", "utf-8")
    return folder


def test_chinese_first_documents_choose_the_multilingual_model(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path
) -> None:
    summary = _pipeline(settings, kbs).run([str(_folder(tmp_path, "zh", ZH))], kb="zh")
    assert summary.embedding_model == MULTILINGUAL_MODEL
    assert summary.embedding_note and "100% Chinese" in summary.embedding_note
    info = kbs.get("zh")
    assert info.embedding_model == MULTILINGUAL_MODEL and not info.embedding_auto
    # Later English documents do not change a base that holds vectors.
    later = _pipeline(settings, kbs).run([str(_folder(tmp_path, "en", EN))], kb="zh")
    assert later.embedding_model == MULTILINGUAL_MODEL and later.embedding_note is None


def test_english_documents_keep_the_default(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path
) -> None:
    summary = _pipeline(settings, kbs).run([str(_folder(tmp_path, "en", EN))], kb="en")
    assert summary.embedding_model == DEFAULT_EMBEDDING_MODEL and summary.embedding_note is None
    assert kbs.get("en").embedding_auto  # nobody chose; but it now holds vectors
    with pytest.raises(ConfigError, match="was built with embedding model"):
        _pipeline(settings, kbs).run(
            [str(_folder(tmp_path, "zh", ZH))], kb="en", embedding_model="multilingual"
        )


def test_an_explicit_choice_is_never_overridden(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path
) -> None:
    summary = _pipeline(settings, kbs).run(
        [str(_folder(tmp_path, "zh", ZH))], kb="zh-minilm", embedding_model="all-MiniLM-L6-v2"
    )
    assert summary.embedding_model == DEFAULT_EMBEDDING_MODEL and summary.embedding_note is None
    assert not kbs.get("zh-minilm").embedding_auto


def test_an_empty_base_created_without_a_choice_switches_on_its_first_ingest(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path
) -> None:
    kbs.create(
        "later", embedding_model=DEFAULT_EMBEDDING_MODEL, embedding_dim=384, embedding_auto=True
    )
    summary = _pipeline(settings, kbs).run([str(_folder(tmp_path, "zh", ZH))], kb="later")
    assert summary.embedding_model == MULTILINGUAL_MODEL and summary.embedding_note
    # A base created with an explicit model keeps it.
    kbs.create("fixed", embedding_model=DEFAULT_EMBEDDING_MODEL, embedding_dim=384)
    kept = _pipeline(settings, kbs).run([str(_folder(tmp_path, "zh2", ZH))], kb="fixed")
    assert kept.embedding_model == DEFAULT_EMBEDDING_MODEL
    with pytest.raises(ConfigError, match="already holds"):
        kbs.set_embedding_model("fixed", model=MULTILINGUAL_MODEL, dimension=384)


def test_sniff_cjk_share_reads_parsed_documents() -> None:
    def document(text: str) -> ParsedDocument:
        return ParsedDocument(
            source=Path("x.txt"),
            mime="text/plain",
            elements=(Element(text=text, category="Text", page=None, heading=None),),
            parser="text",
        )

    assert sniff_cjk_share([]) is None
    assert sniff_cjk_share([document(ZH), document(ZH)]) == 1.0
    assert sniff_cjk_share([document(EN)]) == 0.0


def test_the_sniffed_files_are_parsed_once_and_kept_for_the_ingest(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "zh"
    folder.mkdir()
    for i in range(7):
        (folder / f"zh-{i}.txt").write_text(f"{i} {ZH}", "utf-8")
    (folder / "zh-0-empty.txt").write_bytes(b"")  # fails in the sniff and in the run
    loads: list[str] = []
    original = DocumentLoader.load

    def counting_load(self: DocumentLoader, path: Path) -> ParsedDocument:
        loads.append(Path(path).name)
        return original(self, path)

    monkeypatch.setattr(DocumentLoader, "load", counting_load)
    inline = settings.model_copy(update={"parse_workers": 0})
    summary = _pipeline(inline, kbs).run([str(folder)], kb="zh")
    assert summary.embedding_model == MULTILINGUAL_MODEL
    assert summary.files_new == 7 and summary.files_failed == 1
    # Every good file is loaded exactly once; only the failed one is tried again.
    assert sorted(loads) == sorted([f"zh-{i}.txt" for i in range(7)] + ["zh-0-empty.txt"] * 2)
