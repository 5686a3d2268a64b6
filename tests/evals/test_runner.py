"""Evaluation runs end to end on real text and the real embedding model.

The generator here is a deterministic reader (tests/fakes.py) so that the scores
have known values: a run that mis-joins predictions and references, leaks train
questions into the test set or mis-scores refusals fails. Every strategy also runs on
the real embedded model in test_eval_cli.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals.errors import DatasetError, StrategyError
from evals.runner import EvalRunner, RunConfig
from evals.split import question_key
from ingest.pipeline import IngestPipeline
from rag.config import Settings
from rag.platform import Platform
from rag.store.eval_runs import EvalRuns
from rag.store.knowledge_bases import KnowledgeBases
from tests.fakes import LookupGenerator

pytestmark = pytest.mark.slow


class CountingIndexer:
    """The product's ingest pipeline, counting how often a run asks for it."""

    def __init__(self, settings: Settings, kbs: KnowledgeBases) -> None:
        self.settings = settings
        self.kbs = kbs
        self.calls: list[str] = []

    def __call__(self, folder: Path, kb: str) -> None:
        self.calls.append(kb)
        IngestPipeline(self.settings, self.kbs).run([str(folder)], kb=kb)


def _answers(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text("utf-8"))
    return {
        qa["question"].strip(): qa["answers"][0]["text"].strip()
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def test_squad_run_scores_closed_book_few_shot_and_rag(
    settings: Settings, kbs: KnowledgeBases, tiny_squad: Path, tmp_path: Path
) -> None:
    generator = LookupGenerator(_answers(tiny_squad))
    indexer = CountingIndexer(settings, kbs)
    runner = EvalRunner(
        Platform(settings, catalog=kbs.catalog), index_folder=indexer, generator=generator
    )
    config = RunConfig(
        dataset=f"squad:{tiny_squad}",
        out=tmp_path / "run",
        strategies=("closed-book", "few-shot", "rag"),
        articles=4,
        questions=30,
        unanswerable=5,
        test_fraction=2 / 3,
        few_shot_k=2,
    )
    report = runner.run(config)

    assert indexer.calls and indexer.calls[0].startswith("eval-squad-")
    data = json.loads((tmp_path / "run" / "report.json").read_text("utf-8"))
    assert data["strategies"].keys() == {"closed-book", "few-shot", "rag"}
    assert data["dataset"]["test_questions"] == 20 and data["dataset"]["train_questions"] == 10
    assert data["dataset"]["unanswerable_questions"] == 5
    for name, strategy in data["strategies"].items():
        for metric in ("f1", "em", "contains", "rouge_l", "bleu"):
            value = strategy["metrics"][metric]
            assert 0.0 <= value <= 1.0, (name, metric, value)
        assert len(data["predictions"][name]) == 25

    closed = data["strategies"]["closed-book"]["metrics"]
    # "I don't know." everywhere: no credit, every question refused.
    assert closed["f1"] == 0.0 and closed["false_refusal_rate"] == 1.0
    assert closed["refusal_rate_unanswerable"] == 1.0
    assert "citation_precision" not in closed

    rag = data["strategies"]["rag"]
    # The reader is exact whenever retrieval brings the answer's source: F1 equals EM and
    # both equal the share of answerable questions whose answer was retrieved.
    rows = [r for r in data["predictions"]["rag"] if r["answerable"]]
    answered = sum(not r["refused"] for r in rows) / len(rows)
    assert rag["metrics"]["em"] == pytest.approx(answered)
    assert rag["metrics"]["f1"] == pytest.approx(answered)
    assert answered >= 0.8  # hybrid retrieval over 12 short paragraphs finds nearly all
    assert rag["metrics"]["refusal_rate_unanswerable"] == 1.0
    assert rag["metrics"]["citation_precision"] >= 0.8
    assert rag["metrics"]["retrieval_hit@k"] >= 0.9
    assert 0.0 < rag["metrics"]["faithfulness"] <= 1.0
    assert rag["best"] is True and data["main_metric"] == "f1"
    assert data["strategies"]["closed-book"]["vs_best"]["within_noise"] is False
    assert {"retrieve", "prompt", "generate", "cite", "total"} <= set(rag["latency"])
    assert rag["generator"] == {"backend": "lookup", "model": "oracle"}

    # No question the few-shot prompt showed, nor any train question, is scored.
    train_keys = set()
    for messages in generator.seen:
        if len(messages) > 1:  # few-shot: worked examples as earlier turns
            train_keys |= {
                question_key(m.content.split("Question:")[1].split("\n")[0])  # type: ignore[attr-defined]
                for m in messages[:-1]
                if m.role == "user"  # type: ignore[attr-defined]
            }
    assert len(train_keys) == 2
    tested = {question_key(r["question"]) for r in data["predictions"]["few-shot"]}
    assert not train_keys & tested

    for name in ("report.md", "quality.png", "quality_vs_latency.png", "quality_vs_cost.png"):
        assert (tmp_path / "run" / name).is_file()
    [row] = EvalRuns(kbs.catalog).list()
    assert row.status == "completed" and row.finished_at is not None
    assert row.summary["rag"]["f1"] == rag["metrics"]["f1"]
    assert report.run_id == row.id
    # The typed report is report.json's data, plus the run's id in the catalog.
    assert json.loads(json.dumps(report.to_dict(), default=str)) == {**data, "run_id": row.id}

    # Every answering strategy's rows carry the breakdown, summed up in its summary.
    breakdown = rag["breakdown"]
    assert breakdown["n"] == 20
    assert breakdown["counts"]["answer_contained"] == sum(
        r["breakdown"]["answer_contained"] for r in rows
    )
    # The exact reader answers whenever the answer's chunk is in its prompt.
    assert breakdown["shares"]["answer_contained"] == pytest.approx(answered)
    assert breakdown["counts"]["gold_in_prompt"] >= breakdown["counts"]["answer_contained"]
    assert "## Error breakdown" in (tmp_path / "run" / "report.md").read_text("utf-8")

    # A second run on the same documents reuses the knowledge base; the oracle reads the
    # gold paragraph alone, so the exact reader answers every answerable question.
    again = runner.run(
        RunConfig(
            dataset=f"squad:{tiny_squad}",
            out=tmp_path / "again",
            strategies=("rag", "oracle"),
            articles=4,
            questions=9,
            unanswerable=2,
        )
    )
    assert len(indexer.calls) == 1
    oracle = again.strategies["oracle"]
    assert oracle["metrics"]["em"] == 1.0 and oracle["metrics"]["refusal_rate_unanswerable"] == 1.0
    assert oracle["breakdown"]["shares"]["gold_in_prompt"] == 1.0
    assert oracle["breakdown"]["shares"]["cited_gold"] == 1.0
    assert oracle["latency"]["retrieve"]["p95"] == 0.0


def test_beir_retrieval_run_on_scifact_queries(
    settings: Settings, kbs: KnowledgeBases, tiny_scifact: Path, tmp_path: Path
) -> None:
    runner = EvalRunner(
        Platform(settings, catalog=kbs.catalog), index_folder=CountingIndexer(settings, kbs)
    )
    report = runner.run(
        RunConfig(
            dataset=f"beir:{tiny_scifact}",
            out=tmp_path / "scifact",
            strategies=("bm25", "dense", "hybrid"),
        )
    )
    assert report.dataset.kind == "retrieval" and report.dataset.queries == 25
    assert report.main_metric == "ndcg@10"
    scores = {n: s["metrics"] for n, s in report.strategies.items()}
    for name, metrics in scores.items():
        # 25 claims over ~130 abstracts: every retriever finds most relevant ones.
        assert 0.5 < metrics["ndcg@10"] <= 1.0, (name, metrics)
        assert metrics["recall@100"] >= metrics["recall@10"] >= metrics["recall@5"]
        assert 0.0 < metrics["mrr"] <= 1.0
    rows = report.predictions["hybrid"]
    assert len(rows) == 25 and all(r["retrieved_docs"] for r in rows)
    text = (tmp_path / "scifact" / "report.md").read_text("utf-8")
    assert "nDCG@10" in text and "hybrid" in text


def test_jsonl_questions_against_an_existing_knowledge_base(
    settings: Settings, kbs: KnowledgeBases, tmp_path: Path
) -> None:
    samples = Path(__file__).resolve().parents[2] / "samples"
    IngestPipeline(settings, kbs).run([str(samples / "security-handbook.md")], kb="handbook")
    questions = tmp_path / "qa.jsonl"
    rows = [
        {
            "id": "rotate",
            "question": "How often is the signing key rotated?",
            "answers": ["every 90 days"],
            "source": "security-handbook.md",
        },
        {"id": "mars", "question": "What is the capital of Mars?", "unanswerable": True},
    ]
    questions.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    generator = LookupGenerator({"How often is the signing key rotated?": "every 90 days"})
    runner = EvalRunner(Platform(settings, catalog=kbs.catalog), generator=generator)
    report = runner.run(
        RunConfig(
            dataset=str(questions),
            out=tmp_path / "run",
            strategies=("rag",),
            kb="handbook",
            test_fraction=1.0,
        )
    )
    rag = report.metrics("rag")
    assert rag["em"] == 1.0 and rag["retrieval_hit@k"] == 1.0  # gold named by file name
    assert rag["refusal_rate_unanswerable"] == 1.0
    assert report.knowledge_base == "handbook"


def test_bad_setups_fail_before_any_work_and_failures_are_recorded(
    settings: Settings, kbs: KnowledgeBases, tiny_squad: Path, tiny_scifact: Path, tmp_path: Path
) -> None:
    generator = LookupGenerator({})
    runner = EvalRunner(Platform(settings, catalog=kbs.catalog), generator=generator)
    with pytest.raises(StrategyError, match="unknown strategies rgа"):
        RunConfig(dataset="x.jsonl", out=tmp_path, strategies=("rgа",))
    with pytest.raises(StrategyError, match="retrieval dataset"):
        runner.run(RunConfig(dataset=f"beir:{tiny_scifact}", out=tmp_path, strategies=("rag",)))
    questions = tmp_path / "qa.jsonl"
    questions.write_text('{"question": "Why?", "answer": "because"}\n', "utf-8")
    with pytest.raises(StrategyError, match="--kb"):
        runner.run(RunConfig(dataset=str(questions), out=tmp_path, strategies=("rag",)))
    with pytest.raises(StrategyError, match="oracle strategy is not measurable"):
        runner.run(RunConfig(dataset=str(questions), out=tmp_path, strategies=("oracle",)))
    with pytest.raises(DatasetError, match="has 5 articles"):
        runner.run(RunConfig(dataset=f"squad:{tiny_squad}", out=tmp_path, articles=9))
    # Fine-tuning needs a model we can train; the lookup reader is not one. The run is
    # recorded as failed with the reason.
    with pytest.raises(StrategyError, match="fine-tuning needs a local model"):
        runner.run(
            RunConfig(
                dataset=f"squad:{tiny_squad}",
                out=tmp_path / "lora",
                strategies=("lora",),
                articles=2,
                questions=6,
                unanswerable=0,
            )
        )
    [row] = EvalRuns(kbs.catalog).list()
    assert row.status == "failed" and "fine-tuning needs a local model" in (row.error or "")
