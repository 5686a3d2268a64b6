"""Retrieval: the chunks of a knowledge base that best answer a question.

Four retrievers share the one-method :class:`Retriever` protocol:

:class:`DenseRetriever`
    FAISS cosine similarity between the query's embedding and each chunk's.
:class:`Bm25Retriever`
    BM25 over :func:`rag.text.tokens.bm25_tokens`, the tokens the index was built with.
:class:`HybridRetriever`
    Reciprocal rank fusion (RRF) of the two rankings: ``sum 1 / (rrf_k + rank)``.
:class:`CrossEncoderReranker`
    Wraps any of them and reorders its candidates with a sentence-transformers
    ``CrossEncoder`` reading (question, chunk text) pairs.

What counts as retrieved (the chain refuses when a retriever returns nothing):

* dense: chunks whose cosine is at least ``score_floor``;
* BM25: chunks sharing a token with the question and scoring at least ``min_score``;
* hybrid: chunks that clear the dense floor, or that dense did not rank while it still
  ranked chunks above the floor (then the question is on topic and the fused ranking
  decides), or that contain a *rare code* of the question: a token mixing letters and
  digits (``E1234``, ``0x8007``, ``ERR-4512``) or a number of five digits or more, found
  in at most :data:`KEYWORD_MAX_CHUNKS` chunks of the base. Embeddings read such codes
  as noise, so an exact match is the only evidence they give. The BM25 score itself is
  no such evidence: on SQuAD, questions asked of unrelated articles get top BM25 scores
  as high as questions asked of their own article (shared words like "year", "first").

Filters (:class:`RetrievalFilter`) are resolved to the allowed chunk ids through the
catalog once per index generation and filter, then both indexes are over-fetched
(growing the depth fourfold) until enough allowed hits are found or the index is
exhausted. Unfiltered queries never touch more than the index's own search.

Every result carries the chunk's source, page, heading, text and character span, and
ranks are 1..n, best first, ties broken by ascending chunk id.

Modules: :mod:`~rag.retrieve.protocol` (``Retriever``, ``RetrievalFilter``),
:mod:`~rag.retrieve.rankers` (dense / BM25 rankings, rare codes, filter resolution),
:mod:`~rag.retrieve.retrievers` (``DenseRetriever``, ``Bm25Retriever``,
``HybridRetriever``), :mod:`~rag.retrieve.rerank` (``CrossEncoderReranker``) and
:mod:`~rag.retrieve.factory` (``build_retriever``).

Example::

    from rag.retrieve.factory import build_retriever

    reader = KnowledgeBaseReader(kbs, "handbook")
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    retriever = build_retriever("hybrid", reader, embedder, score_floor=0.3)
    for hit in retriever.retrieve("How do I rotate the API keys?", k=6):
        print(hit.rank, hit.source, hit.page, f"{hit.score:.4f}", hit.dense_score)
"""
