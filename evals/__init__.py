"""The evaluation suite: RAG against prompt-only and fine-tuned baselines.

``datasets`` loads SQuAD-layout (SQuAD, CMRC 2018), BEIR and the project's JSONL sets;
``split`` separates train and test questions; ``strategies`` answers them; ``finetune``
trains LoRA or full copies of the generator; ``metrics``/``retrieval_metrics``/``stats``
score; ``runner`` ties a run together and ``report`` writes report.json, report.md and
plots.
"""
