"""The retriever protocol's shared argument checks and the document filter."""

from __future__ import annotations

import pytest

from rag.retrieve.protocol import RetrievalFilter, check_retrieve_args, positive_int


def test_check_retrieve_args_accepts_a_question_k_and_filter() -> None:
    check_retrieve_args("How are keys rotated?", 1, None)
    check_retrieve_args("How are keys rotated?", 200, RetrievalFilter(path_glob="*.md"))


@pytest.mark.parametrize(
    ("query", "k", "filters", "error", "match"),
    [
        (b"bytes", 3, None, TypeError, "query"),
        ("   ", 3, None, ValueError, "query"),
        ("q", 0, None, ValueError, "k must"),
        ("q", True, None, ValueError, "k must"),
        ("q", 2.0, None, ValueError, "k must"),
        ("q", 3, {"sources": ()}, TypeError, "filters"),
    ],
)
def test_check_retrieve_args_names_the_bad_parameter(
    query: object, k: object, filters: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_retrieve_args(query, k, filters)  # type: ignore[arg-type]


def test_positive_int() -> None:
    assert positive_int("rrf_k", 60) == 60
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(ValueError, match="rrf_k must be a positive integer"):
            positive_int("rrf_k", bad)  # type: ignore[arg-type]


def test_filter_matches_sources_and_glob() -> None:
    both = RetrievalFilter(sources=["/a/x.md", "/b/y.pdf"], path_glob="*.pdf")  # type: ignore[arg-type]
    assert both.sources == ("/a/x.md", "/b/y.pdf") and not both.is_empty
    assert both.matches("/b/y.pdf") and not both.matches("/a/x.md")
    assert RetrievalFilter().is_empty and RetrievalFilter().matches("/anything")
    with pytest.raises(TypeError, match="single string"):
        RetrievalFilter(sources="/a/x.md")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path_glob"):
        RetrievalFilter(path_glob=" ")
