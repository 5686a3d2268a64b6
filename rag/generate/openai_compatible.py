"""A generator that calls any OpenAI-compatible chat-completions server over HTTP.

Speaks the protocol vLLM, Ollama, llama.cpp's server and OpenAI itself share:
``POST {base_url}/chat/completions`` with ``stream: false`` (one JSON answer) or
``stream: true`` (server-sent events ``data: {...}`` carrying
``choices[0].delta.content``, closed by ``data: [DONE]``). ``httpx`` is used directly,
so timeouts, retries and error messages are ours.

Retries, with exponential backoff, cover what a retry can fix: connection failures,
HTTP 429 and 5xx. A 4xx is the request's fault and is reported with the server's own
message at once. A streamed answer is never retried once text has arrived, since the
reader has already seen it.

Example::

    generator = OpenAICompatibleGenerator(
        "http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-7B-Instruct",
        api_key=SecretStr("sk-..."), timeout=60.0, max_retries=2,
    )
    for piece in generator.stream([ChatMessage("user", "Hello")]):
        ...
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from rag.errors import GenerationError, GeneratorUnavailableError
from rag.generate.stops import (
    StopSequenceFilter,
    check_generation_args,
    check_sampling_args,
    cut_at_stop,
    estimate_tokens,
)
from rag.records import ChatMessage

logger = logging.getLogger(__name__)

#: Connecting should take milliseconds; a slow answer is what the full timeout is for.
_MAX_CONNECT_TIMEOUT = 10.0
#: Longest wait between two tries, whatever the backoff or a Retry-After header says.
_MAX_RETRY_DELAY = 30.0
#: How much of an unparseable error body goes into a message.
_MAX_ERROR_CHARS = 500

# Failures of the connection itself: the request may not have reached the server, or
# the server dropped it without an answer, so trying again can help.
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


class OpenAICompatibleGenerator:
    """A :class:`~rag.generate.protocol.Generator` for an OpenAI-compatible chat-completions server.

    Construction only validates; the HTTP client is created on first use. The API key
    is sent as a bearer token and appears in no log, ``repr`` or ``info``.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (``/chat/completions``
            is appended).
        model: the model name the server serves.
        api_key: bearer token; None (or empty) sends no ``Authorization`` header.
        timeout: seconds to wait for the server (per read; connecting waits at most 10 s).
        max_retries: extra tries after a connection failure, 429 or 5xx.
        max_new_tokens: default answer length (sent as ``max_tokens``).
        temperature: 0 asks the server for greedy decoding.
        context_window: the model's context length, which the protocol does not report.
        backoff: seconds before the first retry; doubles with each further one.

    Example::

        generator = OpenAICompatibleGenerator("http://127.0.0.1:11434/v1", "llama3.2",
                                              api_key=None, timeout=30.0)
        text = generator.generate([ChatMessage("user", "Say hi")], max_new_tokens=8)
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: SecretStr | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        context_window: int = 8192,
        backoff: float = 0.5,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.strip():
            raise ValueError(f"base_url must be a non-empty URL, got {base_url!r}")
        try:
            parsed = httpx.URL(base_url.strip())
        except httpx.InvalidURL as exc:
            raise ValueError(f"base_url {base_url!r} is not a valid URL: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(
                f"base_url must be an http(s) URL such as http://127.0.0.1:8000/v1, "
                f"got {base_url!r}"
            )
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty model name, got {model!r}")
        if api_key is not None and not isinstance(api_key, SecretStr):
            raise TypeError(f"api_key must be a SecretStr or None, got {type(api_key).__name__}")
        for name, value in (("timeout", timeout), ("backoff", backoff)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if timeout == 0:
            raise ValueError("timeout must be a positive number of seconds, got 0")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        if (
            isinstance(context_window, bool)
            or not isinstance(context_window, int)
            or (context_window < 1)
        ):
            raise ValueError(f"context_window must be a positive integer, got {context_window!r}")
        check_sampling_args(max_new_tokens, temperature)
        self._base_url = str(parsed).rstrip("/")
        # Shown in messages and info: never with credentials embedded in the URL.
        self._public_url = str(parsed.copy_with(username=None, password=None)).rstrip("/")
        self._endpoint = f"{self._base_url}/chat/completions"
        self._model = model
        self._api_key = api_key if api_key is not None and api_key.get_secret_value() else None
        self._timeout = float(timeout)
        self._max_retries = max_retries
        self._max_new_tokens = max_new_tokens
        self._temperature = float(temperature)
        self._context_window = context_window
        self._backoff = float(backoff)
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    # -- the Generator interface --

    @property
    def info(self) -> dict[str, str]:
        """``{"backend": "openai", "model": ..., "base_url": ...}`` (no credentials)."""
        return {"backend": "openai", "model": self._model, "base_url": self._public_url}

    @property
    def context_window(self) -> int:
        """The context length given to the constructor (the server does not report it)."""
        return self._context_window

    @property
    def parameter_count(self) -> None:
        """None: a remote server does not say how large its model is."""
        return None

    def count_tokens(self, text: str) -> int:
        """Estimated tokens (see :func:`rag.generate.stops.estimate_tokens`): no local tokenizer."""
        return estimate_tokens(text)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> str:
        """The whole answer from one non-streaming request.

        Args:
            messages: the chat prompt.
            max_new_tokens: sent as ``max_tokens`` (default: the constructor's).
            stop: sent to the server; the text is also cut here, for servers that
                ignore it.

        Raises:
            TypeError, ValueError: bad arguments.
            GeneratorUnavailableError: the server cannot be reached (after retries).
            GenerationError: timeout, a rejected request (4xx), persistent 5xx/429, or an
                answer that is not chat-completions JSON.
        """
        messages, max_new, stops = check_generation_args(messages, max_new_tokens, stop)
        body = self._request_body(messages, max_new, stops, stream=False)
        response = self._send(body)
        try:
            raw = response.read()
        except httpx.TimeoutException as exc:
            raise self._timeout_error() from exc
        except httpx.TransportError as exc:
            raise GenerationError(
                f"the connection to {self._public_url} broke while reading the answer: {exc}"
            ) from exc
        finally:
            response.close()
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise GenerationError(
                f"the server at {self._public_url} sent an answer that is not chat-completions "
                f"JSON: {_shorten(raw.decode('utf-8', errors='replace'))}"
            ) from exc
        return cut_at_stop(content or "", stops)

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_new_tokens: int | None = None,
        stop: Sequence[str] = (),
    ) -> Generator[str, None, None]:
        """The answer as the server streams it, piece by piece, in order.

        Arguments are checked now; the request is sent on the first ``next()``.
        ``close()`` the returned generator to stop early: the connection is dropped.

        Raises:
            The same as :meth:`generate`; a failure after text has arrived raises
            :class:`GenerationError` without retrying.
        """
        messages, max_new, stops = check_generation_args(messages, max_new_tokens, stop)
        body = self._request_body(messages, max_new, stops, stream=True)
        return self._stream(body, stops)

    # -- lifecycle --

    def warm_up(self) -> None:
        """Create the HTTP client (idempotent); contacts no server."""
        self._http()

    def close(self) -> None:
        """Close the HTTP client's connections; a later call opens new ones."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> OpenAICompatibleGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleGenerator(base_url={self._public_url!r}, model={self._model!r}, "
            f"api_key={'set' if self._api_key else 'none'}, timeout={self._timeout:g})"
        )

    # -- HTTP --

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                headers = {"Accept": "application/json, text/event-stream"}
                if self._api_key is not None:
                    headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
                self._client = httpx.Client(
                    timeout=httpx.Timeout(
                        self._timeout, connect=min(self._timeout, _MAX_CONNECT_TIMEOUT)
                    ),
                    headers=headers,
                )
            return self._client

    def _request_body(
        self,
        messages: list[ChatMessage],
        max_new_tokens: int | None,
        stop: tuple[str, ...],
        *,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": self._max_new_tokens if max_new_tokens is None else max_new_tokens,
            "temperature": self._temperature,
            "stream": stream,
        }
        if stop:
            body["stop"] = list(stop)
        return body

    def _send(self, body: dict[str, Any]) -> httpx.Response:
        """POST ``body``, retrying what a retry can fix; returns an open 2xx response.

        The body is not read yet (streamed answers are read as they arrive); the caller
        closes the response.
        """
        client = self._http()
        attempt = 0
        while True:
            reason: str
            failure: Exception
            retry_after: float | None = None
            try:
                request = client.build_request("POST", self._endpoint, json=body)
                response = client.send(request, stream=True)
            except httpx.ConnectTimeout as exc:
                reason = f"connecting timed out ({exc})"
                failure = exc
            except httpx.TimeoutException as exc:
                raise self._timeout_error() from exc
            except _CONNECTION_ERRORS as exc:
                reason = str(exc) or type(exc).__name__
                failure = exc
            else:
                status = response.status_code
                if status < 400:
                    return response
                message = _error_message(response)
                retryable = status == 429 or status >= 500
                if not retryable or attempt >= self._max_retries:
                    raise GenerationError(self._http_error_text(status, message, attempt + 1))
                reason = f"HTTP {status}: {message}"
                retry_after = _retry_after(response)
                failure = GenerationError(reason)
            if attempt >= self._max_retries:
                raise GeneratorUnavailableError(
                    f"cannot reach the OpenAI-compatible server at {self._public_url}: "
                    f"{reason}; start it or fix --base-url"
                ) from failure
            delay = min(self._backoff * 2**attempt, _MAX_RETRY_DELAY)
            if retry_after is not None:
                delay = min(max(delay, retry_after), _MAX_RETRY_DELAY)
            attempt += 1
            logger.warning(
                "OpenAI-compatible server at %s: %s; retry %d of %d in %.2f s",
                self._public_url,
                reason,
                attempt,
                self._max_retries,
                delay,
            )
            time.sleep(delay)

    def _stream(self, body: dict[str, Any], stop: tuple[str, ...]) -> Generator[str, None, None]:
        response = self._send(body)
        stops = StopSequenceFilter(stop)
        try:
            for content in _sse_contents(response, self._public_url):
                released = stops.feed(content)
                if released:
                    yield released
                if stops.stopped:
                    break
            tail = stops.flush()
            if tail:
                yield tail
        except httpx.TimeoutException as exc:
            raise self._timeout_error() from exc
        except httpx.TransportError as exc:
            raise GenerationError(
                f"the connection to {self._public_url} broke while streaming the answer: {exc}"
            ) from exc
        finally:
            # Also when the reader stops early: closing drops the connection, which tells
            # the server to stop generating.
            response.close()

    def _timeout_error(self) -> GenerationError:
        return GenerationError(
            f"the OpenAI-compatible server at {self._public_url} did not answer within the "
            f"timeout of {self._timeout:g} s; raise generator_timeout (RAG_GENERATOR_TIMEOUT) "
            "or use a faster model"
        )

    def _http_error_text(self, status: int, message: str, attempts: int) -> str:
        text = f"the OpenAI-compatible server at {self._public_url} answered HTTP {status}"
        if attempts > 1:
            text += f" ({attempts} attempts)"
        text += f": {message}"
        if status in (401, 403):
            text += "; check openai_api_key (RAG_OPENAI_API_KEY)"
        elif status == 404:
            text += (
                f"; check that model {self._model!r} is served there and that base_url "
                "ends with the API root (often /v1)"
            )
        return text


def _sse_contents(response: httpx.Response, url: str) -> Iterator[str]:
    """The non-empty ``choices[0].delta.content`` strings of a chat-completions stream."""
    for line in response.iter_lines():
        # Blank lines separate events; "event:", "id:" and ":" comment lines carry no text.
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            return
        try:
            event = json.loads(payload)
        except ValueError as exc:
            raise GenerationError(
                f"the server at {url} streamed an event that is not JSON: {_shorten(payload)}"
            ) from exc
        if not isinstance(event, dict):
            raise GenerationError(f"the server at {url} streamed an unexpected event: {payload}")
        if "error" in event:
            raise GenerationError(
                f"the server at {url} reported an error mid-answer: {_message_of(event)}"
            )
        choices = event.get("choices")
        if not choices:
            # A usage-only event (stream_options.include_usage) has no choices.
            continue
        delta = choices[0].get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str) and content:
            yield content


def _error_message(response: httpx.Response) -> str:
    """The server's own explanation of an error response, read and closed here."""
    try:
        raw = response.read()
    except httpx.TransportError as exc:
        return f"(no body: {exc})"
    finally:
        response.close()
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _shorten(text) or response.reason_phrase
    return _message_of(data) if isinstance(data, dict) else _shorten(text)


def _message_of(data: dict[str, Any]) -> str:
    """The message in the error shapes servers use: OpenAI's, FastAPI's, plain ones."""
    error = data.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str) and error:
        return error
    for key in ("detail", "message"):
        if data.get(key):
            return _shorten(str(data[key]))
    return _shorten(json.dumps(data))


def _retry_after(response: httpx.Response) -> float | None:
    """A ``Retry-After`` header given in seconds (the HTTP-date form is ignored)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + "..."
