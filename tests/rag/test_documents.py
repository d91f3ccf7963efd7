"""Parsers (txt, md, html, pdf) and chunkers (tokens, heading, sentence)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from podium.core.tokens import count_tokens
from podium.errors import ValidationFailed
from podium.rag.chunking import ChunkConfig, chunk_text
from podium.rag.documents import load_path, parse


def tiny_pdf(lines: list[str]) -> bytes:
    """A valid one-page PDF with these text lines (Helvetica), xref offsets computed."""
    ops = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({ln}) Tj T*" for ln in lines) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, o in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_txt_md_html_pdf() -> None:
    t = parse("notes/a.txt", b"\xef\xbb\xbfplain text\r\nline two", metadata={"lang": "en"})
    assert (t.id, t.kind, t.text, t.metadata, t.title) == ("notes/a.txt", "txt", "plain text\nline two",
                                                         {"lang": "en"}, "a")
    m = parse("guide.md", "# Guide\n\nIntro.\n\n## Install\n\nRun it.")
    assert m.kind == "md" and m.title == "Guide" and "## Install" in m.text
    h = parse("page.html", b"<html><head><title>FAQ</title><style>p{}</style></head><body><script>x=1</script>"
                           b"<h1>Pricing</h1><p>Free &amp; open.</p><h2>Support</h2><p>Ask.</p></body></html>")
    assert h.title == "FAQ"
    assert h.text == "# Pricing\n\nFree & open.\n\n## Support\n\nAsk."
    p = parse("paper.pdf", tiny_pdf(["Retrieval augmented generation", "cites its sources"]))
    assert p.kind == "pdf" and "Retrieval augmented generation" in p.text and "cites its sources" in p.text
    with pytest.raises(ValidationFailed, match="PDF"):
        parse("broken.pdf", b"%PDF-1.4 not really")
    with pytest.raises(ValidationFailed, match="UTF-8"):
        parse("bin.txt", b"\xff\xfe\x00bad")


def test_load_folder_recursively(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\n\ntext")
    (tmp_path / "sub" / "b.html").write_text("<p>b</p>")
    (tmp_path / "sub" / "c.pdf").write_bytes(tiny_pdf(["c"]))
    (tmp_path / "skip.bin").write_bytes(b"\x00")
    (tmp_path / ".hidden.md").write_text("no")
    assert [d.id for d in load_path(tmp_path)] == ["a.md", "sub/b.html", "sub/c.pdf"]


TEXT = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(60))


def test_token_windows_respect_size_overlap_and_offsets() -> None:
    chunks = chunk_text(TEXT, ChunkConfig("tokens", size=64, overlap=16))
    assert len(chunks) > 5
    for c in chunks:
        assert TEXT[c.start:c.end] == c.text
        assert count_tokens(c.text) <= 64
    # consecutive windows overlap (the next starts before the previous ends)
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))
    assert chunks[-1].end == len(TEXT)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_sentence_chunks_keep_sentences_whole() -> None:
    chunks = chunk_text(TEXT, ChunkConfig("sentence", size=50, overlap=0))
    for c in chunks:
        assert c.text.endswith(".") and c.text[0].isupper()
        assert count_tokens(c.text) <= 50
        assert TEXT[c.start:c.end] == c.text
    joined = " ".join(c.text for c in chunks)
    assert joined == TEXT  # no overlap: every sentence once, in order
    overlapped = chunk_text(TEXT, ChunkConfig("sentence", size=50, overlap=15))
    assert len(overlapped) > len(chunks)


def test_heading_chunks_carry_their_path() -> None:
    md = "Preface text.\n\n# Install\n\nGeneral steps.\n\n## Linux\n\nUse apt.\n\n## macOS\n\nUse brew.\n\n# Use\n\nRun."
    chunks = chunk_text(md, ChunkConfig("heading", size=64, overlap=0))
    assert [(c.heading, c.text.splitlines()[-1]) for c in chunks] == [
        (None, "Preface text."), ("Install", "General steps."), ("Install > Linux", "Use apt."),
        ("Install > macOS", "Use brew."), ("Use", "Run.")]
    for c in chunks:
        assert md[c.start:c.end] == c.text


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="strategy"):
        ChunkConfig("paragraph")
    with pytest.raises(ValidationFailed, match="overlap"):
        ChunkConfig("tokens", size=64, overlap=60)
    assert chunk_text("   ", ChunkConfig()) == []
