"""Dataset loaders: SQuAD layout (SQuAD, CMRC 2018), BEIR folders and the project's JSONL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evals.datasets import load_dataset, parse_spec
from evals.errors import DatasetError


def _squad_file(tmp_path: Path, articles: int = 3, per_article: int = 4) -> Path:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": f"Article_{a}",
                "paragraphs": [
                    {
                        "context": f"Paragraph {p} of article {a} says the answer is A{a}P{p}.",
                        "qas": [
                            {
                                "id": f"q{a}-{p}",
                                "question": f"What does paragraph {p} of article {a} say?",
                                "answers": [
                                    {"text": f"A{a}P{p}", "answer_start": 0},
                                    {"text": f"A{a}P{p}", "answer_start": 0},
                                ],
                            }
                        ],
                    }
                    for p in range(per_article)
                ],
            }
            for a in range(articles)
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data), "utf-8")
    return path


def test_squad_layout_documents_questions_and_unanswerable(tmp_path: Path) -> None:
    path = _squad_file(tmp_path)
    dataset = load_dataset(f"squad:{path}", articles=2, questions=5, unanswerable=3, seed=1)
    assert dataset.kind == "qa" and dataset.language == "en"
    assert [d.title for d in dataset.documents] == ["Article_0", "Article_1"]
    assert dataset.documents[0].text.count("\n\n") == 3  # paragraphs joined by blank lines
    answerable = dataset.answerable
    assert len(answerable) == 5
    for example in answerable:
        # Duplicate reference answers collapse; the paragraph is the evidence.
        assert len(example.answers) == 1
        assert example.evidence is not None and example.answers[0] in example.evidence
        assert example.doc_id in {d.doc_id for d in dataset.documents}
    outside = [e for e in dataset.examples if not e.answerable]
    assert len(outside) == 3
    # Unanswerable questions come from articles outside the corpus and carry no answer.
    assert all(e.answers == () and "article 2" in e.question for e in outside)


def test_squad_sample_is_seeded(tmp_path: Path) -> None:
    path = _squad_file(tmp_path)
    a = load_dataset(f"squad:{path}", articles=3, questions=6, seed=5)
    b = load_dataset(f"squad:{path}", articles=3, questions=6, seed=5)
    c = load_dataset(f"squad:{path}", articles=3, questions=6, seed=6)
    assert [e.qid for e in a.examples] == [e.qid for e in b.examples]
    assert [e.qid for e in a.examples] != [e.qid for e in c.examples]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"articles": 9}, "has 3 articles"),
        ({"articles": 1, "questions": 50}, "use more --articles"),
        ({"articles": 3, "unanswerable": 1}, "lie outside the chosen articles"),
    ],
)
def test_squad_requests_the_file_cannot_meet_are_clear_errors(
    tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"squad:{_squad_file(tmp_path)}", **kwargs)


def test_cmrc_slice_of_the_shared_data_is_chinese(shared_data: Path) -> None:
    dataset = load_dataset(
        f"cmrc:{shared_data / 'cmrc2018' / 'cmrc2018_trial.json'}",
        articles=5,
        questions=20,
        unanswerable=4,
    )
    assert dataset.name == "cmrc" and dataset.language == "zh"
    assert len(dataset.documents) == 5 and len(dataset.answerable) == 20
    assert sum(not e.answerable for e in dataset.examples) == 4
    for example in dataset.answerable:
        assert example.evidence and example.answers[0] in example.evidence


def test_squad_slice_of_the_shared_data(shared_data: Path) -> None:
    dataset = load_dataset(
        f"squad:{shared_data / 'squad' / 'train-v1.1-slice.json'}", articles=10, questions=300
    )
    assert len(dataset.documents) == 10 and len(dataset.examples) == 300
    assert len({e.qid for e in dataset.examples}) == 300


def _beir_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = [
        {"_id": "d1", "title": "Aspirin", "text": "Aspirin reduces fever.", "metadata": {}},
        {"_id": "d2", "title": "Vitamin C", "text": "Vitamin C and colds.", "metadata": {}},
        {"_id": "d3", "title": "", "text": "Sleep and memory.", "metadata": {}},
    ]
    queries = [
        {"_id": "2", "text": "Does aspirin lower fever?", "metadata": {}},
        {"_id": "10", "text": "Does sleep help memory?", "metadata": {}},
        {"_id": "7", "text": "A train-only query", "metadata": {}},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus), "utf-8")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries), "utf-8")
    # BEIR's qrels: header line, tabs, CRLF endings.
    (folder / "qrels" / "test.tsv").write_bytes(
        b"query-id\tcorpus-id\tscore\r\n10\td3\t1\r\n2\td1\t1\r\n2\td2\t1\r\n"
    )
    return folder


def test_beir_folder_with_crlf_qrels_and_natural_query_order(tmp_path: Path) -> None:
    dataset = load_dataset(f"beir:{_beir_folder(tmp_path)}")
    assert dataset.kind == "retrieval"
    assert [d.doc_id for d in dataset.documents] == ["d1", "d2", "d3"]
    # Only judged queries, in numeric order; "7" has no judgments in this split.
    assert [e.qid for e in dataset.examples] == ["2", "10"]
    assert dataset.qrels == {"2": {"d1": 1, "d2": 1}, "10": {"d3": 1}}
    first = load_dataset(f"beir:{_beir_folder(tmp_path)}", questions=1)
    assert [e.qid for e in first.examples] == ["2"]


def test_beir_folder_missing_a_file_names_it(tmp_path: Path) -> None:
    folder = _beir_folder(tmp_path)
    (folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(DatasetError, match=r"qrels/test\.tsv"):
        load_dataset(f"beir:{folder}")


def test_the_scifact_test_split(shared_data: Path) -> None:
    dataset = load_dataset(f"beir:{shared_data / 'scifact'}")
    assert len(dataset.documents) == 5183
    assert len(dataset.examples) == 300
    assert sum(len(r) for r in dataset.qrels.values()) == 339


def test_jsonl_questions_answers_and_unanswerable(tmp_path: Path) -> None:
    path = tmp_path / "my-qa.jsonl"
    rows = [
        {"id": "a", "question": "How often is the key rotated?", "answers": ["every 90 days"]},
        {"question": "Who reviews access?", "answer": "team leads", "source": "handbook.md"},
        {"question": "What is the capital of Mars?", "unanswerable": True},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", "utf-8")
    dataset = load_dataset(str(path))
    assert dataset.documents == () and dataset.kind == "qa"
    a, b, c = dataset.examples
    assert (a.qid, a.answers) == ("a", ("every 90 days",))
    assert (b.qid, b.answers, b.doc_id) == ("q2", ("team leads",), "handbook.md")
    assert not c.answerable and c.answers == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"answers": ["x"]}', "non-empty 'question'"),
        ('{"question": "Why?"}', "mark the question"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not a JSON object"),
    ],
)
def test_jsonl_bad_lines_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok?", "answer": "yes"}\n' + line + "\n", "utf-8")
    with pytest.raises(DatasetError, match=message) as caught:
        load_dataset(f"jsonl:{path}")
    assert "2" in str(caught.value)


def test_specs_without_a_kind_or_path_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="KIND:PATH"):
        parse_spec("data.json")
    with pytest.raises(DatasetError, match="does not exist"):
        parse_spec(f"squad:{tmp_path / 'missing.json'}")
    not_squad = tmp_path / "x.json"
    not_squad.write_text('{"rows": []}', "utf-8")
    with pytest.raises(DatasetError, match="SQuAD layout"):
        load_dataset(f"squad:{not_squad}")
