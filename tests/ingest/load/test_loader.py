"""Tests of ingest/load/ on real files of every supported format (tests/fixtures_build.py)."""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import shutil
import socket
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ingest.document import Element, ParsedDocument
from ingest.errors import EmptyDocumentError, FileTooLargeError, ParseError, UnsupportedFormatError
from ingest.load.loader import SUPPORTED_EXTENSIONS, DocumentLoader
from rag.store.files import sha256_file
from tests import fixtures_build as fx

#: Files that go through unstructured; the first such load in a process imports it (~2 s).
UNSTRUCTURED_FILES = ("docx", "pptx", "xlsx", "html", "zh_html", "zh_md", "md", "eml", "epub")
FAST_PATH_FILES = ("txt", "csv", "gbk_txt")

MIMES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "zh_html": "text/html",
    "zh_md": "text/markdown",
    "md": "text/markdown",
    "txt": "text/plain",
    "csv": "text/csv",
    "eml": "message/rfc822",
    "epub": "application/epub+zip",
    "gbk_txt": "text/plain",
}

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="tesseract is not installed (apt-get install tesseract-ocr); OCR cannot be tested",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fx.build_all(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def loader() -> DocumentLoader:
    return DocumentLoader()


@pytest.fixture(scope="module")
def loaded(files: dict[str, Path], loader: DocumentLoader) -> dict[str, ParsedDocument]:
    """Every good file except the PDFs, loaded once for the format tests below."""
    return {name: loader.load(files[name]) for name in UNSTRUCTURED_FILES + FAST_PATH_FILES}


def _element_with(document: ParsedDocument, text: str) -> Element:
    matches = [element for element in document.elements if text in element.text]
    assert matches, f"{text!r} not found in {[e.text for e in document.elements]}"
    return matches[0]


# --- API -----------------------------------------------------------------------------


def test_supported_extensions_cover_the_required_formats() -> None:
    required = {".pdf", ".docx", ".pptx", ".xlsx", ".html", ".htm", ".md", ".markdown"}
    required |= {".txt", ".text", ".csv", ".eml", ".epub"}
    assert required <= SUPPORTED_EXTENSIONS
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)


def test_supports_goes_by_extension_case_insensitively(loader: DocumentLoader) -> None:
    assert loader.supports(Path("a/Report.PDF"))
    assert loader.supports(Path("notes.markdown"))
    assert not loader.supports(Path("data.xyz"))
    assert not loader.supports(Path("README"))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_file_bytes": 0}, ValueError),
        ({"max_file_bytes": -5}, ValueError),
        ({"max_file_bytes": 1.5}, TypeError),
        ({"ocr": "yes"}, TypeError),
    ],
)
def test_constructor_rejects_bad_configuration(kwargs: dict[str, object], error: type) -> None:
    with pytest.raises(error):
        DocumentLoader(**kwargs)  # type: ignore[arg-type]


def test_loader_is_picklable_and_keeps_its_configuration() -> None:
    copy = pickle.loads(pickle.dumps(DocumentLoader(ocr=False, max_file_bytes=1234)))
    assert (copy.ocr, copy.max_file_bytes) == (False, 1234)


def test_sha256_file_matches_hashlib(files: dict[str, Path]) -> None:
    path = files["pdf"]
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- contract: every good file -------------------------------------------------------


@pytest.mark.parametrize("name", UNSTRUCTURED_FILES + FAST_PATH_FILES)
def test_every_format_loads_as_clean_elements(
    name: str, files: dict[str, Path], loaded: dict[str, ParsedDocument]
) -> None:
    document = loaded[name]
    assert document.source == files[name]
    assert document.mime == MIMES[name]
    assert document.parser
    assert document.elements
    for element in document.elements:
        assert element.text
        assert element.text == element.text.strip()
        assert "\r" not in element.text
        assert element.category not in {"Header", "Footer", "PageNumber", "PageBreak"}
        assert element.page is None or element.page >= 1
    assert document.text == "\n\n".join(e.text for e in document.elements)


# --- per format ----------------------------------------------------------------------


@pytest.mark.slow
def test_pdf_keeps_pages_and_headings(files: dict[str, Path], loader: DocumentLoader) -> None:
    document = loader.load(files["pdf"])
    assert document.parser == "unstructured:pdf:fast"
    assert document.mime == "application/pdf"
    first = _element_with(document, "solar array produced forty")
    second = _element_with(document, "battery bank to store twelve")
    assert first.page == 1
    assert second.page == 2
    assert second.heading == fx.PDF_PAGE2_HEADING
    assert _element_with(document, fx.PDF_TITLE).category == "Title"


def test_docx_heading_path(loaded: dict[str, ParsedDocument]) -> None:
    document = loaded["docx"]
    assert document.parser == "unstructured:docx"
    assert _element_with(document, fx.DOCX_INTRO).heading == fx.DOCX_H1
    body = _element_with(document, fx.DOCX_BODY)
    assert body.text == fx.DOCX_BODY
    assert body.heading == f"{fx.DOCX_H1} > {fx.DOCX_H2}"


def test_pptx_pages_are_slides(loaded: dict[str, ParsedDocument]) -> None:
    document = loaded["pptx"]
    first = _element_with(document, fx.PPTX_SLIDE1_BODY)
    second = _element_with(document, fx.PPTX_SLIDE2_BODY)
    assert (first.page, first.heading) == (1, fx.PPTX_SLIDE1_TITLE)
    assert (second.page, second.heading) == (2, fx.PPTX_SLIDE2_TITLE)
    # A bullet unstructured guessed to be a title is body text, not a heading.
    assert first.category != "Title"


def test_xlsx_pages_are_sheets_and_rows_stay_rows(loaded: dict[str, ParsedDocument]) -> None:
    document = loaded["xlsx"]
    widget = _element_with(document, "Widget | 42")
    acme = _element_with(document, "Acme Corporation | Canada")
    assert (widget.page, widget.heading, widget.category) == (1, fx.XLSX_SHEET1, "Table")
    assert (acme.page, acme.heading) == (2, fx.XLSX_SHEET2)
    assert acme.text.splitlines()[0] == "Supplier | Country"


@pytest.mark.parametrize(
    ("name", "body", "heading"),
    [
        ("html", fx.HTML_BODY, f"{fx.HTML_H1} > {fx.HTML_H2}"),
        ("md", fx.MD_BODY, f"{fx.MD_H1} > {fx.MD_H2}"),
        ("zh_html", fx.ZH_HTML_BODY, f"{fx.ZH_HTML_H1} > {fx.ZH_HTML_H2}"),
        ("zh_md", fx.ZH_MD_BODY, f"{fx.ZH_MD_H1} > {fx.ZH_MD_H2}"),
        ("epub", fx.EPUB_CHAPTER2_BODY, fx.EPUB_CHAPTER2),
    ],
)
def test_markup_formats_keep_text_and_heading_path(
    name: str, body: str, heading: str, loaded: dict[str, ParsedDocument]
) -> None:
    element = _element_with(loaded[name], body)
    # Exact text: Chinese sentences and their 。！？ survive untouched.
    assert element.text == body
    assert element.heading == heading


def test_markdown_list_items_keep_their_heading(loaded: dict[str, ParsedDocument]) -> None:
    item = _element_with(loaded["md"], fx.MD_LIST_ITEM)
    assert item.category == "ListItem"
    assert item.heading == f"{fx.MD_H1} > {fx.MD_H2}"


def test_email_subject_heads_the_body(loaded: dict[str, ParsedDocument]) -> None:
    document = loaded["eml"]
    assert document.elements[0].text == fx.EML_SUBJECT
    assert document.elements[0].category == "Title"
    body = _element_with(document, "database servers will be offline")
    assert body.heading is not None and body.heading.startswith(fx.EML_SUBJECT)


def test_txt_paragraphs_split_on_blank_lines_with_newlines_normalized(
    loaded: dict[str, ParsedDocument],
) -> None:
    document = loaded["txt"]
    assert document.parser == "text"
    assert [e.text for e in document.elements] == list(fx.TXT_PARAGRAPHS)
    assert all(e.page is None and e.heading is None for e in document.elements)


def test_gbk_text_is_decoded_exactly(loaded: dict[str, ParsedDocument]) -> None:
    assert loaded["gbk_txt"].text == fx.GBK_TEXT


def test_csv_rows_stay_rows_under_their_header(loaded: dict[str, ParsedDocument]) -> None:
    document = loaded["csv"]
    assert document.parser == "csv"
    assert [e.text for e in document.elements] == [
        "\n".join(" | ".join(row) for row in fx.CSV_ROWS)
    ]


def test_long_csv_repeats_the_header_in_every_element(
    tmp_path: Path, loader: DocumentLoader
) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id;name\n" + "".join(f"{i};item {i}\n" for i in range(120)), "utf-8")
    elements = loader.load(path).elements
    assert len(elements) == 3
    assert all(e.text.startswith("id | name\n") for e in elements)
    assert elements[-1].text.endswith("119 | item 119")


def test_form_feeds_in_text_mark_pages(tmp_path: Path, loader: DocumentLoader) -> None:
    path = tmp_path / "pages.txt"
    path.write_text("first page text\n\fsecond page text\n", encoding="utf-8")
    elements = loader.load(path).elements
    assert [(e.text, e.page) for e in elements] == [
        ("first page text", 1),
        ("second page text", 2),
    ]


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8 with BOM", "\ufeffnaïve café 中文".encode()),
        ("utf-16 with BOM", "naïve café 中文".encode("utf-16")),
        ("utf-16-le without BOM", "plain ascii words in utf-16".encode("utf-16-le")),
        ("utf-32 with BOM", "naïve café 中文".encode("utf-32")),
        ("gb18030", fx.GBK_TEXT.encode("gb18030")),
        (
            "big5",
            "這是一個使用大五碼保存的繁體中文文件。我們需要確認載入器能夠正確解碼。".encode("big5"),
        ),
        ("cp1252", ("Le café est très agréable à côté de la rivière. " * 4).encode("cp1252")),
    ],
)
def test_text_encodings_are_detected(
    encoding: str, data: bytes, tmp_path: Path, loader: DocumentLoader
) -> None:
    path = tmp_path / "encoded.txt"
    path.write_bytes(data)
    expected = data.decode(
        {
            "utf-8 with BOM": "utf-8-sig",
            "utf-16 with BOM": "utf-16",
            "utf-16-le without BOM": "utf-16-le",
            "utf-32 with BOM": "utf-32",
        }.get(encoding, encoding)
    ).strip()
    assert loader.load(path).text == expected


def test_gbk_html_with_a_meta_charset_is_decoded(tmp_path: Path, loader: DocumentLoader) -> None:
    path = tmp_path / "gbk.html"
    path.write_bytes(
        f'<html><head><meta charset="gbk"></head><body><h1>{fx.ZH_HTML_H1}</h1>'
        f"<p>{fx.ZH_HTML_BODY}</p></body></html>".encode("gbk")
    )
    element = _element_with(loader.load(path), fx.ZH_HTML_BODY)
    assert element.heading == fx.ZH_HTML_H1


@pytest.mark.slow
def test_more_formats_load_with_headings(tmp_path: Path, loader: DocumentLoader) -> None:
    extra = fx.build_extra_formats(tmp_path)
    table = loader.load(extra["tsv"])
    assert table.text == "\n".join(" | ".join(row) for row in fx.CSV_ROWS)
    for name in ("rst", "org", "odt", "rtf"):
        document = loader.load(extra[name])
        assert document.parser == f"unstructured:{name}"
        body = _element_with(document, fx.MD_BODY)
        assert body.heading == f"{fx.MD_H1} > {fx.MD_H2}", name


@pytest.mark.slow
def test_every_supported_extension_is_wired(
    files: dict[str, Path], tmp_path: Path, loader: DocumentLoader
) -> None:
    samples = [files[name] for name in ("pdf", *UNSTRUCTURED_FILES, *FAST_PATH_FILES)]
    samples += fx.build_extra_formats(tmp_path / "extra").values()
    for name, alias in (("html", ".htm"), ("md", ".markdown"), ("txt", ".text")):
        copy = tmp_path / f"alias{alias}"
        shutil.copyfile(files[name], copy)
        samples.append(copy)
    assert {path.suffix for path in samples} == SUPPORTED_EXTENSIONS
    for path in samples:
        assert loader.load(path).elements, path


# --- OCR -----------------------------------------------------------------------------


@pytest.mark.slow
@needs_tesseract
def test_scanned_pdf_is_read_with_ocr(files: dict[str, Path], loader: DocumentLoader) -> None:
    document = loader.load(files["scanned_pdf"])
    assert document.parser == "unstructured:pdf:ocr_only"
    text = document.text.upper()
    assert "SCANNED INVOICE" in text
    assert "4321" in text
    assert "PAYMENT WITHIN THIRTY DAYS" in text
    assert all(element.page == 1 for element in document.elements)


@pytest.mark.slow
def test_scanned_pdf_without_ocr_says_to_turn_it_on(files: dict[str, Path]) -> None:
    with pytest.raises(EmptyDocumentError, match="no text layer") as caught:
        DocumentLoader(ocr=False).load(files["scanned_pdf"])
    assert files["scanned_pdf"].name in str(caught.value)
    assert "RAG_OCR" in str(caught.value)


@pytest.mark.slow
def test_scanned_pdf_without_tesseract_says_to_install_it(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(EmptyDocumentError, match="tesseract-ocr") as caught:
        DocumentLoader(ocr=True).load(files["scanned_pdf"])
    assert files["scanned_pdf"].name in str(caught.value)


# --- bad files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error", "phrase"),
    [
        ("corrupt_pdf", ParseError, "not a readable PDF"),
        ("empty_txt", EmptyDocumentError, "empty"),
        ("binary_txt", ParseError, "looks like a binary file, not text"),
        ("unsupported", UnsupportedFormatError, ".docx"),
    ],
)
def test_bad_files_raise_the_right_error_naming_the_file(
    name: str, error: type[ParseError], phrase: str, files: dict[str, Path], loader: DocumentLoader
) -> None:
    with pytest.raises(ParseError) as caught:
        loader.load(files[name])
    # Exact class: a corrupt PDF is not "empty", a binary file is not "unsupported".
    assert type(caught.value) is error
    assert str(files[name]) in str(caught.value)
    assert phrase in str(caught.value)


def test_file_over_the_size_limit(files: dict[str, Path]) -> None:
    with pytest.raises(FileTooLargeError, match="RAG_MAX_FILE_MB") as caught:
        DocumentLoader(max_file_bytes=16).load(files["txt"])
    assert str(files["txt"]) in str(caught.value)


def test_missing_file(tmp_path: Path, loader: DocumentLoader) -> None:
    missing = tmp_path / "nowhere.md"
    with pytest.raises(ParseError, match="not found") as caught:
        loader.load(missing)
    assert str(missing) in str(caught.value)


def test_whitespace_only_text_is_empty(tmp_path: Path, loader: DocumentLoader) -> None:
    path = tmp_path / "blank.txt"
    path.write_text(" \n\n\t\n", encoding="utf-8")
    with pytest.raises(EmptyDocumentError, match=r"blank\.txt"):
        loader.load(path)


def test_broken_docx_is_a_parse_error(tmp_path: Path, loader: DocumentLoader) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with pytest.raises(ParseError, match=r"broken\.docx") as caught:
        loader.load(path)
    assert type(caught.value) is ParseError


# --- offline and multi-process -------------------------------------------------------


def test_loading_opens_no_network_connection(
    files: dict[str, Path], loader: DocumentLoader, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
        # setenv first so that monkeypatch restores "unset" after the loader sets it.
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    document = loader.load(files["md"])
    assert document.elements
    assert attempts == []

    from unstructured.nlp import tokenize

    from ingest.load.unstructured_shims import load_packaged_spacy_model

    assert tokenize._load_spacy_model is load_packaged_spacy_model


def _load_in_worker(loader: DocumentLoader, path: Path) -> ParsedDocument:
    return loader.load(path)


@pytest.mark.slow
def test_loader_works_in_a_fresh_worker_process(files: dict[str, Path]) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        document = pool.submit(_load_in_worker, DocumentLoader(), files["docx"]).result()
    assert _element_with(document, fx.DOCX_BODY).heading == f"{fx.DOCX_H1} > {fx.DOCX_H2}"


def test_pdf_running_header_is_dropped_but_a_top_of_page_heading_is_kept(tmp_path: Path) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = tmp_path / "policy.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    for page, (heading, body) in enumerate(
        [
            ("Backup policy", "Databases are backed up every night to a second region."),
            ("Restoring a database", "A restore of the billing database takes forty minutes."),
        ],
        start=1,
    ):
        pdf.setFont("Helvetica", 8)
        pdf.drawString(72, 820, "ACME CONFIDENTIAL")
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, 780, heading)
        pdf.setFont("Helvetica", 11)
        pdf.drawString(72, 740, body)
        pdf.drawString(280, 40, f"Page {page}")
        pdf.showPage()
    pdf.save()
    document = DocumentLoader().load(path)
    texts = [e.text for e in document.elements]
    assert "ACME CONFIDENTIAL" not in texts
    restore = next(e for e in document.elements if e.text.startswith("A restore"))
    assert restore.page == 2 and restore.heading == "Restoring a database"
    backup = next(e for e in document.elements if e.text.startswith("Databases"))
    assert backup.page == 1 and backup.heading == "Backup policy"
