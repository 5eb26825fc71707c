"""A real public corpus for the ingestion benchmarks, fetched from Debian documentation packages.

    .venv/bin/python benchmarks/corpus.py benchmarks/.cache/corpus/docs [--max-docs 400]

Downloads ``python3.11-doc`` (the Python 3.11 manual: Sphinx HTML pages and their
reStructuredText sources, plain text) and ``nodejs-doc`` (the Node.js API reference in Markdown)
with ``apt-get download``, extracts them with ``dpkg-deb -x`` and copies a deterministic selection
into the target folder: about 60% HTML, the rest ``.txt`` (reStructuredText) and ``.md``. A page is
taken in one format only. Writes ``corpus.json`` (provenance) and ``queries.jsonl`` (known-item
queries built from the documents' titles) beside the target folder.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PYTHON_DOC = "python3.11-doc"
NODE_DOC = "nodejs-doc"
PACKAGES = (PYTHON_DOC, NODE_DOC)
PYTHON_HTML = Path("usr/share/doc/python3.11/html")
NODE_API = Path("usr/share/doc/nodejs/api")
#: Sphinx folders and generated pages that are no documents of their own (indexes, search, TOCs).
PYTHON_SKIP_DIRS = {"_sources", "_static", "_images", "_downloads"}
PYTHON_SKIP_PAGES = re.compile(r"^(genindex.*|py-modindex|search|contents|index|.*/index)$")
MIN_BYTES = 2 * 1024
MAX_BYTES = 40 * 1024  # keeps a full suite run within about half an hour on 2 cores
HTML_SHARE = 0.6
#: At most this share of the non-HTML documents are Markdown; the rest are reStructuredText.
MARKDOWN_SHARE = 0.5
QUERY_LIMIT = 100
MIN_TITLE_WORDS = 3


@dataclass(frozen=True)
class Candidate:
    """One page in one format: where it comes from and where it goes in the target."""

    page: str  # identity of the page, the same for all its formats
    dest: str  # path relative to the target folder
    source: Path
    gzipped: bool = False

    def read(self) -> bytes:
        data = self.source.read_bytes()
        return gzip.decompress(data) if self.gzipped else data


def _stable_rank(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


# --- fetching ---------------------------------------------------------------------------------


def _run(command: list[str], cwd: Path | None = None) -> str:
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def download_deb(package: str, cache_dir: Path) -> Path:
    """``apt-get download`` into ``cache_dir``, reusing a .deb already there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(cache_dir.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    if found:
        return found[-1]
    try:
        _run(["apt-get", "download", package], cwd=cache_dir)
    except subprocess.CalledProcessError:
        # A fresh machine has no package lists yet.
        _run(["apt-get", "update"])
        _run(["apt-get", "download", package], cwd=cache_dir)
    found = sorted(cache_dir.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"apt-get download {package} left no .deb in {cache_dir}")
    return found[-1]


def deb_version(deb: Path) -> str:
    return _run(["dpkg-deb", "-f", str(deb), "Version"]).strip()


def extract_deb(deb: Path, cache_dir: Path) -> Path:
    """``dpkg-deb -x`` into ``cache_dir/extracted/<deb name>`` once."""
    root = cache_dir / "extracted" / deb.stem
    done = root / ".extracted"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(root)])
        done.touch()
    return root


# --- selection --------------------------------------------------------------------------------


def _size_ok(size: int) -> bool:
    return MIN_BYTES <= size <= MAX_BYTES


def python_pages(root: Path) -> dict[str, list[Candidate]]:
    """Each manual page with the formats it can be taken in (HTML page, reStructuredText source)."""
    base = root / PYTHON_HTML
    pages: dict[str, list[Candidate]] = {}
    for page_html in sorted(base.rglob("*.html")):
        rel = page_html.relative_to(base)
        page = rel.with_suffix("").as_posix()
        if rel.parts[0] in PYTHON_SKIP_DIRS or PYTHON_SKIP_PAGES.match(page):
            continue
        formats = []
        if _size_ok(page_html.stat().st_size):
            formats.append(Candidate(page, f"{page}.html", page_html))
        source = base / "_sources" / f"{page}.rst.txt"
        if source.is_file() and _size_ok(source.stat().st_size):
            formats.append(Candidate(page, f"{page}.txt", source))
        if formats:
            pages[page] = formats
    return pages


def node_pages(root: Path) -> list[Candidate]:
    """The Node.js API reference in Markdown (gzipped in the package)."""
    found = []
    for path in sorted((root / NODE_API).glob("*.md.gz")):
        name = path.name.removesuffix(".md.gz")
        candidate = Candidate(f"nodejs/{name}", f"nodejs/{name}.md", path, gzipped=True)
        if _size_ok(len(candidate.read())):
            found.append(candidate)
    return found


def _pick_format(formats: list[Candidate], want_html: bool, room: dict[str, int]) -> Candidate | None:
    ordered = sorted(formats, key=lambda c: c.dest.endswith(".html") != want_html)
    for candidate in ordered:
        kind = "html" if candidate.dest.endswith(".html") else "txt"
        if room[kind] > 0:
            room[kind] -= 1
            return candidate
    return None


def select(python: dict[str, list[Candidate]], node: list[Candidate], max_docs: int) -> list[Candidate]:
    """A deterministic mix: ~60% HTML, the rest Markdown and plain text; one format per page."""
    html_quota = round(max_docs * HTML_SHARE)
    text_quota = max_docs - html_quota
    markdown = sorted(node, key=lambda c: _stable_rank(c.page))[: int(text_quota * MARKDOWN_SHARE)]
    room = {"html": html_quota, "txt": text_quota - len(markdown)}
    python_html_share = room["html"] / max(1, room["html"] + room["txt"])
    chosen: list[Candidate] = list(markdown)
    for page in sorted(python, key=_stable_rank):
        if room["html"] + room["txt"] == 0:
            break
        want_html = int(_stable_rank("format:" + page)[:8], 16) / 0xFFFFFFFF < python_html_share
        candidate = _pick_format(python[page], want_html, room)
        if candidate is not None:
            chosen.append(candidate)
    return sorted(chosen, key=lambda c: c.dest)


# --- writing ----------------------------------------------------------------------------------


def _prepare_target(target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        if not (target.parent / "corpus.json").exists():
            raise FileExistsError(f"{target} is not empty and was not made by this script")
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)


def _copy(chosen: Iterable[Candidate], target: Path) -> list[dict]:
    files = []
    for candidate in chosen:
        data = candidate.read()
        dest = target / candidate.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        files.append({"path": candidate.dest, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return files


def fetch_corpus(target: Path, *, cache_dir: Path = Path("benchmarks/.cache"), max_docs: int = 400) -> dict:
    """Fetch the packages, copy a selection of ``max_docs`` documents into ``target``, return provenance."""
    target, cache_dir = Path(target), Path(cache_dir)
    packages, roots = [], {}
    for package in PACKAGES:
        deb = download_deb(package, cache_dir)
        packages.append({"name": package, "version": deb_version(deb), "deb": deb.name})
        roots[package] = extract_deb(deb, cache_dir)
    chosen = select(python_pages(roots[PYTHON_DOC]), node_pages(roots[NODE_DOC]), max_docs)
    _prepare_target(target)
    files = _copy(chosen, target)
    provenance = {
        "packages": packages,
        "documents": len(files),
        "by_extension": dict(sorted(Counter(Path(f["path"]).suffix for f in files).items())),
        "total_bytes": sum(f["bytes"] for f in files),
        "selection": {"max_docs": max_docs, "min_bytes": MIN_BYTES, "max_bytes": MAX_BYTES, "html_share": HTML_SHARE},
        "files": files,
    }
    (target.parent / "corpus.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


# --- known-item queries -----------------------------------------------------------------------

_HTML_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_DOC_SUFFIX = re.compile(r"\s*[—–-]+\s*Python [\w.+]+ documentation\s*$")
_RST_ADORNMENT = re.compile(r"^([=\-~*^\"#+`'])\1{2,}\s*$")
_RST_ROLE = re.compile(r":[\w:-]+:`[!~]?([^`<]*?)(?:\s*<[^>]*>)?`")
_SECTION_NUMBER = re.compile(r"^\d+(\.\d+)*\.?\s+")
_MODULE_SEPARATOR = re.compile(r"\s+(?:—|---|--)\s+")
_MODULE_PREFIX = re.compile(r"^[a-z_][\w.]*:\s+")  # "email.charset: Representing character sets"


def _html_title(text: str) -> str:
    match = _HTML_TITLE.search(text)
    return _DOC_SUFFIX.sub("", html.unescape(match.group(1))) if match else ""


def _rst_title(text: str) -> str:
    lines = text.splitlines()
    for line, underline in zip(lines, lines[1:], strict=False):
        heading = line.strip()
        is_text = bool(heading) and not heading.startswith("..") and not _RST_ADORNMENT.match(heading)
        if is_text and _RST_ADORNMENT.match(underline.strip()):
            return heading
    return ""


def _markdown_title(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:]
    return ""


def clean_title(title: str) -> str:
    """Drop reST roles, the module name before a dash and section numbers."""
    title = _RST_ROLE.sub(r"\1", title).replace("``", "").replace("\\ ", "")
    parts = _MODULE_SEPARATOR.split(title, maxsplit=1)
    title = parts[-1]
    title = _SECTION_NUMBER.sub("", _MODULE_PREFIX.sub("", title.strip()))
    return " ".join(title.replace("`", "").split())


def document_title(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    readers = {".html": _html_title, ".txt": _rst_title, ".md": _markdown_title}
    reader = readers.get(path.suffix)
    return clean_title(reader(text)) if reader else ""


def _documents(target: Path) -> Iterator[Path]:
    return (p for p in sorted(target.rglob("*")) if p.is_file() and not p.name.startswith("."))


def known_item_queries(target: Path, limit: int = QUERY_LIMIT) -> list[dict]:
    """A document's own title as the query, the document as the one relevant answer."""
    target = Path(target)
    titles = {p.relative_to(target).as_posix(): document_title(p) for p in _documents(target)}
    counts = Counter(t.casefold() for t in titles.values())
    usable = [
        (rel, title)
        for rel, title in titles.items()
        if len(title.split()) >= MIN_TITLE_WORDS and counts[title.casefold()] == 1
    ]
    usable.sort(key=lambda item: _stable_rank(item[0]))
    return [{"id": f"ki-{_stable_rank(rel)[:10]}", "query": title, "relevant": [rel]} for rel, title in usable[:limit]]


def write_queries(queries: Iterable[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for query in queries:
            handle.write(json.dumps(query, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", type=Path, help="folder to fill with the documents")
    parser.add_argument("--max-docs", type=int, default=400)
    parser.add_argument("--cache-dir", type=Path, default=Path("benchmarks/.cache"))
    parser.add_argument("--queries", type=Path, help="JSONL file for the queries (default: beside the target)")
    args = parser.parse_args()
    provenance = fetch_corpus(args.target, cache_dir=args.cache_dir, max_docs=args.max_docs)
    queries = known_item_queries(args.target)
    queries_path = args.queries or args.target.parent / "queries.jsonl"
    write_queries(queries, queries_path)
    summary = {key: value for key, value in provenance.items() if key != "files"}
    print(json.dumps({**summary, "queries": len(queries), "queries_file": str(queries_path)}, indent=2))


if __name__ == "__main__":
    main()
