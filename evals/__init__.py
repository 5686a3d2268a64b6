"""The evaluation suite: RAG against prompt-only and fine-tuned baselines.

``datasets`` loads SQuAD-layout (SQuAD, CMRC 2018), BEIR and the project's JSONL sets;
``split`` separates train and test questions; ``strategies`` answers them; ``finetune``
trains LoRA or full copies of the generator; ``metrics.answer``/``metrics.retrieval``
define the measures, ``stats`` the intervals, and ``scoring`` applies them to a run;
``runner`` ties a run together (its objects come from :class:`rag.platform.Platform`),
returns a ``run_report.EvalReport`` and ``report`` writes report.json, report.md and
plots.
"""
