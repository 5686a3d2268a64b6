"""OpenAICompatibleGenerator against a real HTTP server on 127.0.0.1 that speaks the
chat-completions protocol (streaming and not) with scripted, deterministic replies:
retries, timeouts, error messages and the bearer token are tested over real sockets."""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from rag.errors import GenerationError, GeneratorUnavailableError
from rag.generate.openai_compatible import OpenAICompatibleGenerator
from rag.records import ChatMessage

#: What the stand-in answers, one streamed piece per "token".
CANNED_PIECES = (
    "The",
    " signing",
    " key",
    " is",
    " rotated",
    " every",
    " 90",
    " days",
    ".",
    " It",
    " is",
    " kept",
    " in",
    " the",
    " vault",
    ".",
)
MESSAGES = [
    ChatMessage("system", "Answer from the sources."),
    ChatMessage("user", "How often is the signing key rotated?"),
]


class _QuietServer(ThreadingHTTPServer):
    """Does not print tracebacks for clients that hung up (timeouts, closed streams)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


@dataclass(frozen=True)
class ScriptedReply:
    """How the stand-in answers one request: a delay, then an error status or the answer."""

    status: int = 200
    message: str = ""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class StandInServer:
    """A chat-completions server in a thread: answers with ``CANNED_PIECES`` cut to
    ``max_tokens`` pieces, streamed as SSE when asked; ``script`` overrides the next
    replies; ``requests`` records what arrived (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.script: list[ScriptedReply] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test output stays readable."""

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                reply = server._record(self.path, dict(self.headers.items()), body)
                if reply.delay:
                    time.sleep(reply.delay)
                if self.path != "/v1/chat/completions":
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                elif reply.status != 200:
                    self._json(
                        reply.status,
                        {"error": {"message": reply.message, "type": "test"}},
                        reply.headers,
                    )
                elif body.get("stream"):
                    self._stream(body)
                else:
                    text = "".join(CANNED_PIECES[: body.get("max_tokens", len(CANNED_PIECES))])
                    self._json(
                        200,
                        {
                            "id": "cmpl-1",
                            "object": "chat.completion",
                            "model": body.get("model"),
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                }
                            ],
                        },
                    )

            def _json(
                self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                pieces = CANNED_PIECES[: body.get("max_tokens", len(CANNED_PIECES))]
                deltas: list[dict[str, Any]] = [{"role": "assistant"}]
                deltas += [{"content": piece} for piece in pieces]
                for delta in deltas:
                    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        # A handler still sleeping (the timeout test) must not hold up shutdown.
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> ScriptedReply:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            return self.script.pop(0) if self.script else ScriptedReply()

    @property
    def url(self) -> str:
        """The API root, as users give it (``.../v1``)."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> StandInServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def server() -> Iterator[StandInServer]:
    stand_in = StandInServer().start()
    yield stand_in
    stand_in.stop()


def make_generator(url: str, **overrides: Any) -> OpenAICompatibleGenerator:
    options: dict[str, Any] = {
        "api_key": None,
        "timeout": 5.0,
        "max_retries": 2,
        "max_new_tokens": 64,
        "temperature": 0.0,
        "backoff": 0.01,
    }
    options.update(overrides)
    return OpenAICompatibleGenerator(url, "stand-in-model", **options)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------- the protocol


def test_streamed_pieces_arrive_in_order(server: StandInServer) -> None:
    with make_generator(server.url) as generator:
        pieces = list(generator.stream(MESSAGES))
    assert pieces == list(CANNED_PIECES)
    body = server.requests[0]["body"]
    assert server.requests[0]["path"] == "/v1/chat/completions"
    assert body["stream"] is True
    assert body["model"] == "stand-in-model"
    assert body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 64


def test_non_streaming_answer(server: StandInServer) -> None:
    with make_generator(server.url) as generator:
        text = generator.generate(MESSAGES, max_new_tokens=7)
    assert text == "".join(CANNED_PIECES[:7])
    assert server.requests[0]["body"]["stream"] is False
    assert server.requests[0]["body"]["max_tokens"] == 7
    assert "stop" not in server.requests[0]["body"]


def test_stop_sequences_are_sent_and_applied_to_servers_that_ignore_them(
    server: StandInServer,
) -> None:
    with make_generator(server.url) as generator:
        text = generator.generate(MESSAGES, stop=[" days"])
        streamed = "".join(generator.stream(MESSAGES, stop=["ing k"]))
    assert text == "The signing key is rotated every 90"
    assert streamed == "The sign"  # the stop spans two streamed pieces
    assert server.requests[0]["body"]["stop"] == [" days"]
    assert server.requests[1]["body"]["stop"] == ["ing k"]


def test_closing_a_stream_early_closes_the_connection(server: StandInServer) -> None:
    with make_generator(server.url) as generator:
        stream = generator.stream(MESSAGES)
        assert next(stream) == "The"
        stream.close()
        # The generator still works after an abandoned stream.
        assert generator.generate(MESSAGES, max_new_tokens=2) == "The signing"


def test_a_base_url_with_trailing_slash_gives_the_same_endpoint(server: StandInServer) -> None:
    with make_generator(server.url + "/") as generator:
        assert generator.generate(MESSAGES, max_new_tokens=1) == "The"
    assert server.requests[0]["path"] == "/v1/chat/completions"


def test_info_names_backend_model_and_url_and_tokens_are_estimated(server: StandInServer) -> None:
    generator = make_generator(server.url, context_window=4096)
    assert generator.info == {
        "backend": "openai",
        "model": "stand-in-model",
        "base_url": server.url,
    }
    assert generator.context_window == 4096
    assert generator.count_tokens("The signing key") == 5
    assert generator.count_tokens("签名密钥") == 4
    assert server.requests == []  # nothing is sent before the first generation


# ---------------------------------------------------------------- failures


def test_server_down_is_reported_quickly_with_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    generator = make_generator(url, max_retries=2, backoff=0.05)
    started = time.perf_counter()
    with pytest.raises(GeneratorUnavailableError) as caught:
        generator.generate(MESSAGES)
    assert time.perf_counter() - started < 3.0
    message = str(caught.value)
    assert url in message
    assert "cannot reach the OpenAI-compatible server" in message
    assert "start it or fix --base-url" in message
    with pytest.raises(GeneratorUnavailableError, match="cannot reach"):
        list(generator.stream(MESSAGES))


def test_a_server_slower_than_the_timeout_gives_a_timeout_error(server: StandInServer) -> None:
    server.script = [ScriptedReply(delay=3.0), ScriptedReply(delay=3.0)]
    generator = make_generator(server.url, timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(GenerationError) as caught:
        generator.generate(MESSAGES)
    assert time.perf_counter() - started < 2.0
    assert not isinstance(caught.value, GeneratorUnavailableError)
    assert "timeout of 0.3 s" in str(caught.value)
    assert "generator_timeout" in str(caught.value)
    with pytest.raises(GenerationError, match="timeout"):
        list(generator.stream(MESSAGES))
    assert len(server.requests) == 2  # a slow server is not asked again


def test_a_500_then_200_succeeds_after_a_retry(server: StandInServer) -> None:
    server.script = [ScriptedReply(500, "model is loading")]
    with make_generator(server.url) as generator:
        assert generator.generate(MESSAGES, max_new_tokens=3) == "The signing key"
    assert len(server.requests) == 2


def test_streaming_retries_a_503_and_a_429_with_retry_after(server: StandInServer) -> None:
    server.script = [
        ScriptedReply(503, "busy"),
        ScriptedReply(429, "slow down", headers={"Retry-After": "0"}),
    ]
    with make_generator(server.url) as generator:
        assert "".join(generator.stream(MESSAGES, max_new_tokens=2)) == "The signing"
    assert len(server.requests) == 3


def test_persistent_5xx_gives_the_servers_message_after_all_retries(
    server: StandInServer,
) -> None:
    server.script = [ScriptedReply(502, "upstream exploded")] * 3
    generator = make_generator(server.url, max_retries=2)
    with pytest.raises(GenerationError, match=r"HTTP 502.*upstream exploded"):
        generator.generate(MESSAGES)
    assert len(server.requests) == 3


def test_a_400_gives_the_servers_message_without_retrying(server: StandInServer) -> None:
    server.script = [ScriptedReply(400, "max_tokens must be at most 4096")]
    generator = make_generator(server.url)
    with pytest.raises(GenerationError) as caught:
        generator.generate(MESSAGES, max_new_tokens=99999)
    assert not isinstance(caught.value, GeneratorUnavailableError)
    assert "HTTP 400" in str(caught.value)
    assert "max_tokens must be at most 4096" in str(caught.value)
    assert len(server.requests) == 1


def test_a_404_hints_at_the_model_name_and_the_api_root(server: StandInServer) -> None:
    generator = make_generator(server.url.removesuffix("/v1"))
    with pytest.raises(GenerationError, match=r"HTTP 404.*ends with the API root"):
        generator.generate(MESSAGES)


# ---------------------------------------------------------------- the API key


def test_bearer_token_is_sent_when_an_api_key_is_set_and_never_logged(
    server: StandInServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = [ScriptedReply(500, "retry me")]
    caplog.set_level(logging.DEBUG)
    generator = make_generator(server.url, api_key=SecretStr("sk-test-secret"))
    assert generator.generate(MESSAGES, max_new_tokens=1) == "The"
    assert all(r["headers"]["Authorization"] == "Bearer sk-test-secret" for r in server.requests)
    assert "sk-test-secret" not in caplog.text
    assert "sk-test-secret" not in repr(generator)
    assert "sk-test-secret" not in json.dumps(generator.info)


def test_no_authorization_header_without_a_key(server: StandInServer) -> None:
    generator = make_generator(server.url, api_key=SecretStr(""))
    generator.generate(MESSAGES, max_new_tokens=1)
    assert "Authorization" not in server.requests[0]["headers"]


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("base_url", "model", "options", "match"),
    [
        ("", "m", {}, "base_url"),
        ("ftp://host/v1", "m", {}, "http"),
        ("http://127.0.0.1:1/v1", " ", {}, "model"),
        ("http://127.0.0.1:1/v1", "m", {"timeout": 0}, "timeout"),
        ("http://127.0.0.1:1/v1", "m", {"max_retries": -1}, "max_retries"),
        ("http://127.0.0.1:1/v1", "m", {"max_new_tokens": 0}, "max_new_tokens"),
        ("http://127.0.0.1:1/v1", "m", {"temperature": 3.0}, "temperature"),
        ("http://127.0.0.1:1/v1", "m", {"context_window": 0}, "context_window"),
    ],
)
def test_bad_constructor_arguments_are_rejected(
    base_url: str, model: str, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        OpenAICompatibleGenerator(base_url, model, **options)


def test_credentials_in_the_url_do_not_show_in_info() -> None:
    generator = OpenAICompatibleGenerator("http://user:pw@127.0.0.1:1/v1", "m")
    assert "pw" not in generator.info["base_url"]
    assert "pw" not in repr(generator)
