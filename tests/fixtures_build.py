"""Build small, deterministic sample files of every supported format (and some bad ones).

Tests of the loader, the chunker and the ingestion pipeline share these files so they
all agree on what each format holds. Every builder writes one file into ``directory``
and returns its path; :func:`build_all` builds them all. The constants below are the
texts the files contain, so tests can assert on them without repeating literals.

Files are byte-for-byte reproducible: zip-based formats are rewritten with fixed
timestamps, PDFs are written in reportlab's invariant mode or with fixed dates, and
"random" bytes come from a seeded generator. Dedup tests rely on that (same input, same
sha256).

Example::

    paths = build_all(tmp_path)
    loader.load(paths["pdf"])
"""

from __future__ import annotations

import random
import shutil
import subprocess
import zipfile
from email.message import EmailMessage
from pathlib import Path

# --- the texts the files contain -------------------------------------------------------

PDF_TITLE = "Quarterly Report"
PDF_PAGE1_BODY = (
    "The solar array produced forty megawatt hours in the first quarter. "
    "Maintenance crews replaced three inverters during March."
)
PDF_PAGE2_HEADING = "Outlook"
PDF_PAGE2_BODY = (
    "Engineers expect the new battery bank to store twelve megawatt hours. "
    "Construction of the second site begins in the autumn."
)

SCANNED_LINES = ("SCANNED INVOICE", "Total due 4321 dollars", "Payment within thirty days")

DOCX_H1 = "Installation Guide"
DOCX_H2 = "Configuring Keys"
DOCX_INTRO = "This guide explains how to install the platform on a single machine."
DOCX_BODY = "Generate an API key in the settings page and store it in the environment."

PPTX_SLIDE1_TITLE = "Product Roadmap"
PPTX_SLIDE1_BODY = "The first release ships the chat interface."
PPTX_SLIDE2_TITLE = "Next Steps"
PPTX_SLIDE2_BODY = "The second release adds evaluation dashboards."

XLSX_SHEET1 = "Inventory"
XLSX_SHEET1_ROWS = (("Item", "Count"), ("Widget", 42), ("Gadget", 7))
XLSX_SHEET2 = "Suppliers"
XLSX_SHEET2_ROWS = (("Supplier", "Country"), ("Acme Corporation", "Canada"))

HTML_H1 = "Travel Policy"
HTML_H2 = "Booking Flights"
HTML_BODY = "Employees must book economy class for flights shorter than six hours."

ZH_HTML_H1 = "员工手册"
ZH_HTML_H2 = "休假制度"
ZH_HTML_BODY = "每位员工每年享有十五天带薪年假。请提前两周提交申请！如何申请病假？"

ZH_MD_H1 = "产品说明"
ZH_MD_H2 = "安装步骤"
ZH_MD_BODY = "首先下载安装包。然后运行安装程序！安装完成后需要重启吗？"

MD_H1 = "Project Notes"
MD_H2 = "Retrieval Design"
MD_BODY = "Hybrid retrieval combines dense vectors with BM25 keyword scores."
MD_LIST_ITEM = "Reciprocal rank fusion merges the two rankings."

TXT_PARAGRAPHS = (
    "The library opens at nine in the morning on weekdays.",
    "Members may borrow up to ten books at a time.\nLate returns incur a small fee.",
    "The reading room is closed on public holidays.",
)

CSV_ROWS = (("city", "population"), ("Lisbon", "545000"), ("Porto", "232000"))

EML_SUBJECT = "Server maintenance window"
EML_BODY = (
    "Hello team,\n\n"
    "The database servers will be offline on Saturday from two to four in the morning.\n\n"
    "Regards,\nOperations"
)

EPUB_TITLE = "A Short Book"
EPUB_CHAPTER1 = "The Lighthouse"
EPUB_CHAPTER1_BODY = "The keeper climbed one hundred steps every evening to light the lamp."
EPUB_CHAPTER2 = "The Storm"
EPUB_CHAPTER2_BODY = "Waves rose higher than the harbour wall during the winter storm."

GBK_TEXT = (
    "这是一个使用国标编码保存的中文文本文件。\n"
    "我们需要确认加载器能够正确识别编码并解码这些汉字。\n\n"
    "第二段落：知识库检索增强生成平台支持多种文档格式，包括网页、表格和演示文稿。"
)

_FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
_SEED = 20240101


def _normalize_zip(path: Path) -> None:
    """Rewrite a zip container with fixed timestamps so the file is byte-reproducible.

    Office writers and pandoc stamp entries with the current time; the entry order and
    compression of each member are kept (EPUB needs ``mimetype`` first and stored).
    """
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data)


# --- good files ------------------------------------------------------------------------


def build_pdf(directory: Path) -> Path:
    """A two-page text PDF: a title and a paragraph on page 1, a heading and text on page 2."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    path = directory / "report.pdf"
    styles = getSampleStyleSheet()
    # The spacers keep each heading in its own pdfminer text box: lines closer than half
    # a line height are merged into one box, and the heading would be lost in the body.
    story = [
        Paragraph(PDF_TITLE, styles["Title"]),
        Spacer(1, 24),
        Paragraph(PDF_PAGE1_BODY, styles["BodyText"]),
        PageBreak(),
        Paragraph(PDF_PAGE2_HEADING, styles["Heading1"]),
        Spacer(1, 24),
        Paragraph(PDF_PAGE2_BODY, styles["BodyText"]),
    ]
    # invariant=1 drops the creation date and random document id: reproducible bytes.
    SimpleDocTemplate(str(path), pagesize=A4, invariant=1).build(story)
    return path


def build_scanned_pdf(directory: Path) -> Path:
    """An image-only PDF (no text layer) whose page shows large, clear black-on-white text."""
    from PIL import Image, ImageDraw, ImageFont

    path = directory / "scanned.pdf"
    image = Image.new("L", (1700, 2200), color=255)
    draw = ImageDraw.Draw(image)
    # Pillow's bundled FreeType font: no dependency on fonts installed on the machine.
    font = ImageFont.load_default(size=72)
    for row, line in enumerate(SCANNED_LINES):
        draw.text((120, 200 + row * 160), line, fill=0, font=font)
    image.save(
        path,
        "PDF",
        resolution=200.0,
        creationDate="D:20240101000000Z",
        modDate="D:20240101000000Z",
    )
    return path


def build_docx(directory: Path) -> Path:
    """A Word file with Heading 1 / Heading 2 and a paragraph under each."""
    import datetime

    import docx

    path = directory / "guide.docx"
    document = docx.Document()
    fixed = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    document.core_properties.created = fixed
    document.core_properties.modified = fixed
    document.add_heading(DOCX_H1, level=1)
    document.add_paragraph(DOCX_INTRO)
    document.add_heading(DOCX_H2, level=2)
    document.add_paragraph(DOCX_BODY)
    document.save(str(path))
    _normalize_zip(path)
    return path


def build_pptx(directory: Path) -> Path:
    """A two-slide deck, each slide with a title and one body paragraph."""
    import datetime

    import pptx

    path = directory / "roadmap.pptx"
    presentation = pptx.Presentation()
    fixed = datetime.datetime(2024, 1, 1)
    presentation.core_properties.created = fixed
    presentation.core_properties.modified = fixed
    layout = presentation.slide_layouts[1]  # "Title and Content"
    for title, body in (
        (PPTX_SLIDE1_TITLE, PPTX_SLIDE1_BODY),
        (PPTX_SLIDE2_TITLE, PPTX_SLIDE2_BODY),
    ):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    presentation.save(str(path))
    _normalize_zip(path)
    return path


def build_xlsx(directory: Path) -> Path:
    """A workbook with two sheets of small tables."""
    import datetime

    import openpyxl

    path = directory / "inventory.xlsx"
    workbook = openpyxl.Workbook()
    first = workbook.active
    first.title = XLSX_SHEET1
    for row in XLSX_SHEET1_ROWS:
        first.append(list(row))
    second = workbook.create_sheet(XLSX_SHEET2)
    for row in XLSX_SHEET2_ROWS:
        second.append(list(row))
    fixed = datetime.datetime(2024, 1, 1)
    workbook.properties.created = fixed
    workbook.properties.modified = fixed
    workbook.save(str(path))
    _normalize_zip(path)
    return path


def build_html(directory: Path) -> Path:
    """An English HTML page with h1/h2 headings, a paragraph and a list."""
    path = directory / "policy.html"
    path.write_text(
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Policy</title></head>\n'
        f"<body>\n<h1>{HTML_H1}</h1>\n<p>All staff travel is approved by a manager.</p>\n"
        f"<h2>{HTML_H2}</h2>\n<p>{HTML_BODY}</p>\n"
        "<ul><li>Use the company travel portal.</li></ul>\n</body></html>\n",
        encoding="utf-8",
    )
    return path


def build_zh_html(directory: Path) -> Path:
    """A Chinese HTML page with h1/h2 headings and sentences ending in 。！？."""
    path = directory / "handbook_zh.html"
    path.write_text(
        '<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
        "<title>手册</title></head>\n"
        f"<body>\n<h1>{ZH_HTML_H1}</h1>\n<p>欢迎加入公司。</p>\n"
        f"<h2>{ZH_HTML_H2}</h2>\n<p>{ZH_HTML_BODY}</p>\n</body></html>\n",
        encoding="utf-8",
    )
    return path


def build_zh_md(directory: Path) -> Path:
    """A Chinese Markdown file with two heading levels and sentences ending in 。！？."""
    path = directory / "product_zh.md"
    path.write_text(
        f"# {ZH_MD_H1}\n\n本产品是一个知识库问答系统。\n\n## {ZH_MD_H2}\n\n{ZH_MD_BODY}\n",
        encoding="utf-8",
    )
    return path


def build_md(directory: Path) -> Path:
    """An English Markdown file with two heading levels, a paragraph and a list."""
    path = directory / "notes.md"
    path.write_text(_notes_markdown(), encoding="utf-8")
    return path


def _notes_markdown() -> str:
    return (
        f"# {MD_H1}\n\nThese notes describe the platform.\n\n## {MD_H2}\n\n{MD_BODY}\n\n"
        f"- {MD_LIST_ITEM}\n"
    )


def build_txt(directory: Path) -> Path:
    """A UTF-8 text file of three paragraphs separated by blank lines (CRLF newlines)."""
    path = directory / "library.txt"
    # CRLF on purpose: the loader must normalize newlines.
    path.write_bytes("\r\n\r\n".join(TXT_PARAGRAPHS).replace("\n", "\r\n").encode("utf-8"))
    return path


def build_csv(directory: Path) -> Path:
    """A small CSV table with a header row."""
    path = directory / "cities.csv"
    path.write_text("\n".join(",".join(row) for row in CSV_ROWS) + "\n", encoding="utf-8")
    return path


def build_eml(directory: Path) -> Path:
    """A plain-text e-mail with a subject and a multi-paragraph body."""
    path = directory / "maintenance.eml"
    message = EmailMessage()
    message["From"] = "ops@example.com"
    message["To"] = "team@example.com"
    message["Subject"] = EML_SUBJECT
    message["Date"] = "Mon, 01 Jan 2024 09:00:00 +0000"
    message["Message-ID"] = "<maintenance-2024@example.com>"
    message.set_content(EML_BODY)
    path.write_bytes(message.as_bytes())
    return path


def _pandoc() -> str:
    """The ``pandoc`` on PATH, else the one bundled with ``pypandoc_binary``."""
    pandoc = shutil.which("pandoc")
    if pandoc is None:
        import pypandoc

        pandoc = pypandoc.get_pandoc_path()
    return str(pandoc)


def build_epub(directory: Path) -> Path:
    """A two-chapter EPUB made by pandoc from Markdown."""
    path = directory / "book.epub"
    pandoc = _pandoc()
    source = directory / "_book_source.md"
    source.write_text(
        f"# {EPUB_CHAPTER1}\n\n{EPUB_CHAPTER1_BODY}\n\n# {EPUB_CHAPTER2}\n\n{EPUB_CHAPTER2_BODY}\n",
        encoding="utf-8",
    )
    try:
        subprocess.run(
            [
                pandoc,
                str(source),
                "--from=markdown",
                "--to=epub3",
                f"--metadata=title:{EPUB_TITLE}",
                "--metadata=identifier:urn:uuid:00000000-0000-4000-8000-000000000001",
                "--metadata=date:2024-01-01",
                "--metadata=lang:en",
                f"--output={path}",
            ],
            check=True,
            capture_output=True,
            # pandoc stamps dcterms:modified with the current time unless this is set.
            env={"SOURCE_DATE_EPOCH": "1704067200", "PATH": "/usr/bin:/bin"},
        )
    finally:
        source.unlink()
    _normalize_zip(path)
    return path


# --- bad files -------------------------------------------------------------------------


def build_corrupt_pdf(directory: Path) -> Path:
    """A file with a PDF header followed by random bytes."""
    path = directory / "corrupt.pdf"
    noise = random.Random(_SEED).randbytes(4096)
    path.write_bytes(b"%PDF-1.7\n" + noise)
    return path


def build_empty_txt(directory: Path) -> Path:
    """A zero-byte .txt file."""
    path = directory / "empty.txt"
    path.write_bytes(b"")
    return path


def build_binary_txt(directory: Path) -> Path:
    """Random bytes with NULs, named .txt."""
    path = directory / "binary.txt"
    noise = bytearray(random.Random(_SEED + 1).randbytes(2048))
    noise[::16] = b"\x00" * len(noise[::16])
    path.write_bytes(bytes(noise))
    return path


def build_gbk_txt(directory: Path) -> Path:
    """Chinese text saved in the GBK encoding (no BOM, no declaration)."""
    path = directory / "notice_gbk.txt"
    path.write_bytes(GBK_TEXT.encode("gbk"))
    return path


def build_unsupported(directory: Path) -> Path:
    """A file whose extension no loader handles."""
    path = directory / "data.xyz"
    path.write_text("some data in an unknown format\n", encoding="utf-8")
    return path


# --- more formats the loader supports (not in build_all) -------------------------------


def build_extra_formats(directory: Path) -> dict[str, Path]:
    """The :func:`build_md` content as TSV, reStructuredText, Org, ODT and RTF files.

    Kept out of :func:`build_all` so its set of files stays small; ODT and RTF need pandoc.

    Returns:
        name -> path for ``tsv``, ``rst``, ``org``, ``odt`` and ``rtf``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    tsv = directory / "cities.tsv"
    tsv.write_text("\n".join("\t".join(row) for row in CSV_ROWS) + "\n", encoding="utf-8")
    rst = directory / "notes.rst"
    rst.write_text(
        f"{MD_H1}\n{'=' * len(MD_H1)}\n\nThese notes describe the platform.\n\n"
        f"{MD_H2}\n{'-' * len(MD_H2)}\n\n{MD_BODY}\n\n- {MD_LIST_ITEM}\n",
        encoding="utf-8",
    )
    org = directory / "notes.org"
    org.write_text(
        f"* {MD_H1}\n\nThese notes describe the platform.\n\n** {MD_H2}\n\n{MD_BODY}\n\n"
        f"- {MD_LIST_ITEM}\n",
        encoding="utf-8",
    )
    markdown = directory / "_notes_source.md"
    markdown.write_text(_notes_markdown(), encoding="utf-8")
    paths = {"tsv": tsv, "rst": rst, "org": org}
    try:
        for extension in ("odt", "rtf"):
            target = directory / f"notes.{extension}"
            subprocess.run(
                [_pandoc(), str(markdown), "--standalone", f"--output={target}"],
                check=True,
                capture_output=True,
                env={"SOURCE_DATE_EPOCH": "1704067200", "PATH": "/usr/bin:/bin"},
            )
            if extension == "odt":
                _normalize_zip(target)
            paths[extension] = target
    finally:
        markdown.unlink()
    return paths


_BUILDERS = {
    "pdf": build_pdf,
    "scanned_pdf": build_scanned_pdf,
    "docx": build_docx,
    "pptx": build_pptx,
    "xlsx": build_xlsx,
    "html": build_html,
    "zh_html": build_zh_html,
    "zh_md": build_zh_md,
    "md": build_md,
    "txt": build_txt,
    "csv": build_csv,
    "eml": build_eml,
    "epub": build_epub,
    "corrupt_pdf": build_corrupt_pdf,
    "empty_txt": build_empty_txt,
    "binary_txt": build_binary_txt,
    "gbk_txt": build_gbk_txt,
    "unsupported": build_unsupported,
}

#: Names of the files that load successfully (the others must raise a ParseError).
GOOD_FILES = frozenset(
    {
        "pdf",
        "scanned_pdf",
        "docx",
        "pptx",
        "xlsx",
        "html",
        "zh_html",
        "zh_md",
        "md",
        "txt",
        "csv",
        "eml",
        "epub",
        "gbk_txt",
    }
)


def build_all(directory: Path) -> dict[str, Path]:
    """Build every sample file into ``directory`` (created if missing).

    Returns:
        name -> path, with the names ``pdf``, ``scanned_pdf``, ``docx``, ``pptx``,
        ``xlsx``, ``html``, ``zh_html``, ``zh_md``, ``md``, ``txt``, ``csv``, ``eml``,
        ``epub``, ``corrupt_pdf``, ``empty_txt``, ``binary_txt``, ``gbk_txt`` and
        ``unsupported``. :data:`GOOD_FILES` names the ones that load.
    """
    directory.mkdir(parents=True, exist_ok=True)
    return {name: builder(directory) for name, builder in _BUILDERS.items()}
