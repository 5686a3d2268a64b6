"""Text generation: one small interface, three backends, one factory.

- :mod:`rag.generate.protocol`: the ``Generator`` interface (generate, stream,
  count_tokens, warm_up, parameter_count) and the optional ``BatchGenerator``.
- :mod:`rag.generate.stops`: argument checks, stop sequences, the token estimate.
- :mod:`rag.generate.huggingface`, :mod:`rag.generate.embedded`,
  :mod:`rag.generate.openai_compatible`: the backends (``hf``, ``embedded``, ``openai``).
- :mod:`rag.generate.gguf_cache`: converted copies of GGUF files.
- :mod:`rag.generate.models`: optional models installed by ``rag models install``.
- :mod:`rag.generate.factory`: ``build_generator``, the one place that picks a backend.

Import from the defining module; this package imports nothing, so importing it never
loads torch.
"""
