"""Documents: parse txt, md, html and pdf files into plain text a chunker can split.

HTML is read with the standard library's :mod:`html.parser` (scripts, styles and templates are
dropped; ``<h1>``..``<h6>`` become Markdown ``#`` headings so the heading chunker sees them).
PDF text comes from ``pypdf`` (the ``rag`` extra), imported on first use; a PDF page becomes a
paragraph. Anything else that decodes as UTF-8 is read as text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from typing import Any

from podium.errors import ConfigurationError, ValidationFailed

__all__ = ["KINDS", "Document", "document_id", "kind_of", "load_path", "parse"]

#: file suffix -> document kind
KINDS: dict[str, str] = {
    ".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".rst": "txt",
    ".html": "html", ".htm": "html", ".pdf": "pdf",
}
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript", "svg", "head"})
_BLOCK_TAGS = frozenset({"p", "div", "br", "li", "tr", "section", "article", "pre", "blockquote", "table",
                         "ul", "ol", "dd", "dt", "header", "footer", "main", "nav", "hr"})
_HEADING = re.compile(r"^h([1-6])$")


@dataclass
class Document:
    """One parsed document: its id (stable: from its name), title, text and metadata."""

    id: str
    text: str
    title: str | None = None
    source: str | None = None
    kind: str = "txt"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def document_id(name: str) -> str:
    """A document's id from its name or path: the name itself (trimmed to 200 characters)."""
    n = name.replace("\\", "/").strip().lstrip("./") or "document"
    return n if len(n) <= 200 else n[:183] + "-" + hashlib.sha256(n.encode()).hexdigest()[:16]


def kind_of(name: str, content_type: str | None = None) -> str:
    """``txt``, ``md``, ``html`` or ``pdf`` from a file name (then the content type)."""
    suffix = Path(name).suffix.lower()
    if suffix in KINDS:
        return KINDS[suffix]
    ct = (content_type or "").split(";")[0].strip().lower()
    return {"text/html": "html", "application/pdf": "pdf", "text/markdown": "md"}.get(ct, "txt")


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        m = _HEADING.match(tag)
        if m and not self._skip:
            self.parts.append("\n\n" + "#" * int(m.group(1)) + " ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag != "br" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if _HEADING.match(tag) or tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data.strip()
            return
        if not self._skip:
            self.parts.append(data)


def _html_text(raw: str) -> tuple[str, str | None]:
    p = _Html()
    p.feed(raw)
    p.close()
    text = "".join(p.parts)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", ln).strip() for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), p.title or None


def _pdf_text(data: bytes) -> str:
    try:
        from pypdf import PdfReader
    except ImportError as e:
        raise ConfigurationError("reading PDF documents needs pypdf: run `pip install 'podium[rag]'`") from e
    try:
        reader = PdfReader(BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except Exception as e:
        raise ValidationFailed(f"could not read the PDF: {e}; check that the file is a valid, unencrypted PDF",
                               details=[{"field": "file", "message": str(e)}]) from e
    return "\n\n".join(p for p in pages if p)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(f"{name} is not UTF-8 text, HTML or PDF; convert it to one of those",
                               details=[{"field": "file", "message": "not UTF-8"}]) from None


def _md_title(text: str) -> str | None:
    m = re.search(r"^#\s+(.+)$", text, re.M)
    return m.group(1).strip() if m else None


def parse(name: str, data: bytes | str, *, kind: str | None = None, metadata: dict[str, Any] | None = None,
          doc_id: str | None = None) -> Document:
    """One document from a file's name and content; ``kind`` overrides the guess from the name."""
    k = kind or kind_of(name)
    if k not in ("txt", "md", "html", "pdf"):
        raise ValidationFailed(f"unknown document kind {k!r}; use txt, md, html or pdf",
                               details=[{"field": "kind", "message": "txt|md|html|pdf"}])
    title: str | None = None
    if k == "pdf":
        if isinstance(data, str):
            raise ValidationFailed("a PDF must be sent as bytes (multipart upload), not text")
        text = _pdf_text(data)
    else:
        raw = data if isinstance(data, str) else _decode(data, name)
        if k == "html":
            text, title = _html_text(raw)
        else:
            text = raw.replace("\r\n", "\n").strip()
            title = _md_title(text) if k == "md" else None
    meta = dict(metadata or {})
    return Document(id=doc_id or document_id(name), text=text, title=title or Path(name).stem or None,
                    source=name, kind=k, metadata=meta)


def load_path(path: str | Path, *, root: Path | None = None) -> Iterator[Document]:
    """Every txt/md/html/pdf file under ``path`` (a file or a folder, recursively, sorted), parsed;
    ids are paths relative to the folder."""
    p = Path(path)
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file() and f.suffix.lower() in KINDS and not any(s.startswith(".") for s in f.relative_to(p).parts):
                yield parse(str(f.relative_to(p)), f.read_bytes())
    elif p.is_file():
        rel = p.relative_to(root) if root else Path(p.name)
        yield parse(str(rel), p.read_bytes())
    else:
        raise ValidationFailed(f"{p} does not exist; give a file or a folder of documents")
