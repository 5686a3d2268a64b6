"""Upload names and sizes, password hashes, escaping and the two languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui.auth import hash_password, verify_password
from ui.i18n import LANGUAGES, keys, tr
from ui.render import escape_markdown
from ui.uploads import UploadRejectedError, safe_filename, save_upload


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
        ("/absolute/path/notes.md", "notes.md"),
        (".bashrc", "bashrc"),
        ("部署指南.md", "部署指南.md"),
        ('a<b>c:"d|e?f*.txt', "a_b_c__d_e_f_.txt"),
        ("line\nbreak\x00.txt", "linebreak.txt"),
        ("CON.txt", "_CON.txt"),
        ("x" * 300 + ".txt", "x" * 120 + ".txt"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


@pytest.mark.parametrize("name", ["..", "../..", "/", "...", "\x00"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(UploadRejectedError):
        safe_filename(name)


def test_save_upload_stays_in_the_kb_folder_and_enforces_the_limit(tmp_path: Path) -> None:
    saved = save_upload(tmp_path, "handbook", "../../../outside.md", b"# hi\n", max_mb=1)
    assert saved.path == (tmp_path / "uploads" / "handbook" / "outside.md").resolve()
    assert saved.path.read_bytes() == b"# hi\n"
    assert not (tmp_path.parent / "outside.md").exists()
    # Same name again replaces the file (an edited document is re-uploaded).
    again = save_upload(tmp_path, "handbook", "outside.md", b"# v2\n", max_mb=1)
    assert again.path.read_bytes() == b"# v2\n"
    assert sorted(p.name for p in again.path.parent.iterdir()) == ["outside.md"]
    with pytest.raises(UploadRejectedError, match="over the 1 MB upload limit"):
        save_upload(tmp_path, "handbook", "big.txt", b"x" * (2**20 + 1), max_mb=1)
    assert not (tmp_path / "uploads" / "handbook" / "big.txt").exists()


def test_password_hash_round_trip() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert hash_password("correct horse") != stored  # salted
    with pytest.raises(ValueError, match="rag hash-password"):
        verify_password("x", "plain-text-password")
    with pytest.raises(ValueError, match="must not be empty"):
        hash_password("")


def test_markdown_escaping_neutralises_html_and_links() -> None:
    escaped = escape_markdown("<script>alert(1)</script> [x](javascript:alert(1)) **b** [1]")
    assert "<script>" not in escaped and "\\<script\\>" in escaped
    assert "](" not in escaped and "\\*\\*b\\*\\*" in escaped
    assert "\\[1\\]" in escaped


def test_every_string_exists_in_both_languages() -> None:
    for key in keys():
        for language in LANGUAGES:
            text = tr(
                key,
                language,
                kb="kb",
                name="n",
                page=1,
                error="e",
                mb=1,
                log="l",
                path="p",
                new=1,
                updated=1,
                skipped=1,
                failed=1,
                chunks=1,
                docs=1,
                model="m",
                kind="flat",
                size=1.0,
                limit=1,
            )
            assert text.strip()
    assert tr("page_chat", "zh") != tr("page_chat", "en")
    with pytest.raises(KeyError):
        tr("no-such-key", "en")
