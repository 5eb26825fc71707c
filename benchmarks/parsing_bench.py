"""Parsing fidelity on real manuals that their publishers ship in several formats.

    .venv/bin/python benchmarks/parsing_bench.py [--queries 150] [--json benchmarks/results/parsing.json]

Three Debian manuals, fetched at run time with ``apt-get download``: the Debian FAQ
(``debian-faq``), the New Maintainers' Guide (``maint-guide``) and the Debian Reference
(``debian-reference-en``). Each ships as HTML chapters, one plain-text file and one TeX-made PDF
(dblatex/xdvipdfmx). DOCX is made from the HTML chapters by Debian's pandoc (installed with apt-get
when missing), as no package ships Word files, and a second kind of PDF from that DOCX by
LibreOffice Writer (``libreoffice-writer-nogui``, installed when missing): a word processor's PDF
beside TeX's. Every format goes through the pipeline's own parse (the fidelity gate included),
chunking (200/32 tokens, title and heading context) and model.

Per manual and format: documents quarantined, text recall (share of the plain-text rendering's
words, with multiplicity, found in the extracted text), fidelity, chunks, chunks holding a running
head or a page number, and retrieval recall@10 and MRR@10 of the same queries. A query is 12
words from the middle of a paragraph of the plain-text rendering (a deterministic sample); a chunk
is relevant when its letters contain those of the query's middle 6 words, so a lost space does
not hide a relevant chunk, it only makes it harder to find. ``pdf (pypdf)`` is the PDF read by
pypdf, the extractor used before pdfium, with the gate off: what indexing it would give.

The publishers' renderings differ: the PDF writes a cross-reference as "Section 1.5.6" where the
HTML and text add its title ("Shell glob"), and leaves out the HTML's contents pages. A query whose
words a format's file does not hold cannot be found in it by any extractor, so the targets are
judged on the queries *answerable in every format*: those whose middle words appear in each
format's file as read by a second reader that does no layout of its own (lxml's text of the HTML,
pypdf's text or pdfium's raw text layer of a PDF, the XML text of a DOCX; letters only, so pypdf's
lost spaces do not matter). The queries left out, with the formats whose files lack their words,
are listed in the results; figures over all queries are reported beside them.

Per PDF and extractor (pdfium, pypdf, and pdfminer.six through pdfplumber in a virtual environment
of its own under ``benchmarks/.cache``), each in a child process of its own: pages per second,
peak RSS (the child's VmHWM), fidelity and text recall.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html as html_module
import io
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pypdfium2 as pdfium

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus as corpus_source  # noqa: E402 - benchmarks/ is a folder of scripts, not a package

from hyperion_pipelines.chunking.chunker import chunk_text  # noqa: E402
from hyperion_pipelines.chunking.context import context_line, embedding_input, fit_context  # noqa: E402
from hyperion_pipelines.chunking.tokenizer import HuggingFaceTokenizer  # noqa: E402
from hyperion_pipelines.embedding.sentence_transformer import (  # noqa: E402
    SentenceTransformerEmbedder,
    packaged_model_dir,
)
from hyperion_pipelines.embedding.space import context_tokens  # noqa: E402
from hyperion_pipelines.parsing.document import ParsedDocument, ParseError  # noqa: E402
from hyperion_pipelines.parsing.fidelity import assess_fidelity  # noqa: E402
from hyperion_pipelines.parsing.pdf_pypdf import parse_pdf_pypdf  # noqa: E402
from hyperion_pipelines.parsing.registry import parse_document  # noqa: E402
from hyperion_pipelines.sources import media_type as mt  # noqa: E402
from hyperion_pipelines.spec import SUPPORTED_MEDIA_TYPES, ChunkingSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / ".cache" / "parsing"
RESULTS = REPO / "benchmarks" / "results" / "parsing.json"
K = 10
SOURCE_SEPARATOR = "#"  # between files in a format's source letters: a query's words never span two
TARGET_GAP = 0.03  # PDF and DOCX recall@10 within this of the same manual's HTML
WORD = re.compile(r"[a-z]{3,}")


@dataclass(frozen=True)
class Manual:
    name: str
    package: str
    html: str  # glob of the chapter files, relative to the package root
    text: str
    pdf: str
    #: a running head of this manual's PDF, as it would read inside a chunk
    running_head: str


MANUALS = (
    Manual(
        "debian-faq",
        "debian-faq",
        "usr/share/doc/debian/FAQ/*.en.html",
        "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz",
        "usr/share/doc/debian/FAQ/debian-faq.en.pdf.gz",
        r"(?m)^(\d+ )?CHAPTER \d+\. [A-Z ]{6,}",
    ),
    Manual(
        "maint-guide",
        "maint-guide",
        "usr/share/doc/maint-guide/html/*.en.html",
        "usr/share/doc/maint-guide/maint-guide.en.txt.gz",
        "usr/share/doc/maint-guide/maint-guide.en.pdf",
        r"(?m)^(\d+ )?CHAPTER \d+\. [A-Z ]{6,}",
    ),
    Manual(
        "debian-reference",
        "debian-reference-en",
        "usr/share/debian-reference/*.en.html",
        "usr/share/debian-reference/debian-reference.en.txt.gz",
        "usr/share/debian-reference/debian-reference.en.pdf",
        r"Debian Reference \d+ / \d+",
    ),
)


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def fetch(manual: Manual) -> tuple[Path, str]:
    deb = corpus_source.download_deb(manual.package, CACHE / "debs")
    return corpus_source.extract_deb(deb, CACHE / "debs"), corpus_source.deb_version(deb)


def ensure_pandoc() -> str | None:
    if shutil.which("pandoc") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "pandoc"], capture_output=True, check=False)
    return shutil.which("pandoc")


def ensure_libreoffice() -> str | None:
    if shutil.which("soffice") is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "libreoffice-writer-nogui"],
            capture_output=True,
            check=False,
        )
    return shutil.which("soffice")


def pdfs_of(docx_files: list[Path], out_dir: Path) -> list[Path]:
    """LibreOffice Writer's PDF export of each DOCX (its defaults: tagged text, bookmarks as outline)."""
    outs = [out_dir / (p.stem + ".pdf") for p in docx_files]
    missing = [str(p) for p, out in zip(docx_files, outs, strict=True) if not out.exists()]
    if missing:
        out_dir.mkdir(parents=True, exist_ok=True)
        profile = (CACHE / "libreoffice-profile").resolve().as_uri()  # not the user's own profile
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation={profile}",
                "--headless",
                "--convert-to",
                "pdf",
                "--outdir",
                str(out_dir),
                *missing,
            ],
            check=True,
            capture_output=True,
            timeout=1800,
        )
    return outs


def docx_of(html: Path, out_dir: Path) -> Path:
    out = out_dir / (html.stem + ".docx")
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["pandoc", "-f", "html", "-t", "docx", "-o", str(out), str(html)], check=True, cwd=html.parent)
    return out


# --- text measures ------------------------------------------------------------------------------


def word_counts(text: str) -> Counter[str]:
    return Counter(WORD.findall(text.lower()))


def text_recall(reference: Counter[str], text: str) -> float:
    found = word_counts(text)
    return sum(min(n, found[w]) for w, n in reference.items()) / max(1, sum(reference.values()))


def letters(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def source_letters(files: list[tuple[str, bytes]], media_type: str) -> str:
    """The letters of each file as a second reader sees them, files apart: what a format's file
    holds, whatever our extractor makes of it."""
    import zipfile

    import lxml.html
    from pypdf import PdfReader

    texts = []
    for _, content in files:
        if media_type == mt.HTML:
            texts.append(lxml.html.fromstring(content).text_content())
        elif media_type == mt.PDF:  # pypdf's text and pdfium's raw text layer: either will do
            texts.append(" ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(content)).pages))
            document = pdfium.PdfDocument(content)
            texts.append(" ".join(document[i].get_textpage().get_text_range() for i in range(len(document))))
            document.close()
        elif media_type == mt.DOCX:
            xml = zipfile.ZipFile(io.BytesIO(content)).read("word/document.xml").decode("utf-8")
            texts.append(html_module.unescape(re.sub(r"<[^>]+>", "", xml)))
        else:
            texts.append(content.decode("utf-8", "replace"))
    return SOURCE_SEPARATOR.join(letters(text) for text in texts)


def queries_of(reference_text: str, count: int, manual: str) -> list[tuple[str, str]]:
    """(query, core letters) from paragraphs of the plain-text rendering, a deterministic sample."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", reference_text)]
    candidates = []
    for paragraph in paragraphs:
        tokens = paragraph.split()
        if len(tokens) < 30 or sum(t.isalpha() for t in tokens) < 20:
            continue
        middle = len(tokens) // 2
        query = tokens[middle - 6 : middle + 6]
        candidates.append((" ".join(query), letters(" ".join(query[3:9]))))
    ranked = sorted(set(candidates), key=lambda c: hashlib.sha1(f"{manual}:{c[0]}".encode()).hexdigest())
    return ranked[:count]


# --- formats -------------------------------------------------------------------------------------


def parse_all(files: list[tuple[str, bytes]], media_type: str, *, pypdf: bool = False) -> dict[str, Any]:
    parsed: list[tuple[str, ParsedDocument]] = []
    quarantined: dict[str, str] = {}
    started = time.perf_counter()
    for name, content in files:
        try:
            if pypdf:
                doc = parse_pdf_pypdf(content)
                doc = ParsedDocument(
                    **{**doc.__dict__, "fidelity": assess_fidelity(doc.text, len(doc.page_offsets)).score}
                )
            else:
                doc = parse_document(content, media_type, SUPPORTED_MEDIA_TYPES, file_name=name)
            parsed.append((name, doc))
        except ParseError as exc:
            quarantined[name] = f"{exc.reason}: {exc.message[:200]}"
    return {"parsed": parsed, "quarantined": quarantined, "seconds": time.perf_counter() - started}


def chunk_inputs(parsed: list[tuple[str, ParsedDocument]], tokenizer: HuggingFaceTokenizer, room: int):
    spec = ChunkingSpec()
    texts, inputs = [], []
    for _, doc in parsed:
        for chunk in chunk_text(
            doc.text, doc.headings, tokenizer, max_tokens=spec.max_tokens, overlap_tokens=spec.overlap_tokens
        ):
            context = fit_context(context_line(doc.title, chunk.heading_path), tokenizer, room)
            texts.append(chunk.text)
            inputs.append(embedding_input(context, chunk.text))
    return texts, inputs


def margin_leaks(texts: list[str], running_head: str) -> int:
    """Chunks holding the manual's running head, or a line that is a bare page number of the
    "n / total" kind a page footer carries."""
    head = re.compile(running_head)
    footer = re.compile(r"(?m)^\s*\d{1,4} / \d{1,4}\s*$")
    return sum(1 for text in texts if head.search(text) or footer.search(text))


def retrieval(
    model: SentenceTransformerEmbedder, chunk_texts: list[str], vectors: np.ndarray, queries, answerable: list[bool]
) -> dict[str, float]:
    """recall@10 and MRR@10 over all queries, and over those answerable in every format."""
    query_vectors = model.embed([q for q, _ in queries])
    chunk_letters = [letters(t) for t in chunk_texts]
    first_ranks: list[int | None] = []
    for (_, core), scores in zip(queries, query_vectors @ vectors.T, strict=True):
        top = np.argsort(-scores, kind="stable")[:K]
        first_ranks.append(next((rank for rank, index in enumerate(top, 1) if core in chunk_letters[index]), None))

    def measures(ranks: list[int | None]) -> tuple[float, float]:
        found = [rank for rank in ranks if rank is not None]
        return round(len(found) / max(1, len(ranks)), 3), round(sum(1 / r for r in found) / max(1, len(ranks)), 3)

    recall, mrr = measures(first_ranks)
    recall_answerable, mrr_answerable = measures([r for r, ok in zip(first_ranks, answerable, strict=True) if ok])
    return {
        "recall@10": recall,
        "mrr@10": mrr,
        "recall@10_answerable": recall_answerable,
        "mrr@10_answerable": mrr_answerable,
    }


def measure_format(
    files, media_type, reference, model, tokenizer, room, queries, answerable, running_head, *, pypdf=False
):
    result = parse_all(files, media_type, pypdf=pypdf)
    parsed = result["parsed"]
    text = "\n\n".join(doc.text for _, doc in parsed)
    chunk_texts, inputs = chunk_inputs(parsed, tokenizer, room)
    started = time.perf_counter()
    vectors = model.embed(inputs) if inputs else np.zeros((0, 384), dtype=np.float32)
    embed_seconds = time.perf_counter() - started
    scores = [doc.fidelity for _, doc in parsed if doc.fidelity is not None]
    return {
        "documents": len(files),
        "quarantined": result["quarantined"],
        "extractors": dict(Counter(doc.parser for _, doc in parsed)),
        "pages": sum(len(doc.page_offsets) for _, doc in parsed),
        "ocr_pages": sum(doc.ocr_pages for _, doc in parsed),
        "parse_seconds": round(result["seconds"], 2),
        "embed_seconds": round(embed_seconds, 1),
        "text_recall": round(text_recall(reference, text), 3),
        "fidelity_min": round(min(scores), 3) if scores else None,
        "chunks": len(chunk_texts),
        "chunks_with_running_head_or_page_number": margin_leaks(chunk_texts, running_head),
        "table_rows": sum(1 for line in text.splitlines() if line.startswith("| ") and line.endswith(" |")),
        **(
            retrieval(model, chunk_texts, vectors, queries, answerable)
            if len(chunk_texts)
            else dict.fromkeys(("recall@10", "mrr@10", "recall@10_answerable", "mrr@10_answerable"), 0.0)
        ),
    }


# --- extractors ----------------------------------------------------------------------------------

_EXTRACT = r"""
import io, json, sys, time
name, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
if path.endswith(".gz"):
    import gzip; data = gzip.decompress(data)
started = time.perf_counter()
if name == "pdfium":
    from hyperion_pipelines.parsing.pdf import parse_pdf
    doc = parse_pdf(data); text, pages = doc.text, len(doc.page_offsets)
elif name == "pypdf":
    from hyperion_pipelines.parsing.pdf_pypdf import parse_pdf_pypdf
    doc = parse_pdf_pypdf(data); text, pages = doc.text, len(doc.page_offsets)
else:
    import logging; logging.disable(logging.WARNING)
    import pdfplumber
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        texts = [page.extract_text() or "" for page in pdf.pages]
    text, pages = "\n\n".join(texts), len(texts)
seconds = time.perf_counter() - started
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec into ru_maxrss
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
json.dump({"seconds": seconds, "pages": pages, "peak_rss_mib": peak, "text": text}, sys.stdout)
"""


def pdfplumber_python() -> str:
    """A virtual environment of its own for pdfplumber (pdfminer.six), which the project does not use."""
    venv = CACHE / "pdfplumber-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pdfplumber"], check=True)
    return str(python)


def measure_extractors(pdf: Path, reference: Counter[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in ("pdfium", "pypdf", "pdfplumber"):
        python = pdfplumber_python() if name == "pdfplumber" else sys.executable
        done = subprocess.run([python, "-c", _EXTRACT, name, str(pdf)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            results[name] = {"error": done.stderr.strip().splitlines()[-1][:200] if done.stderr.strip() else "failed"}
            continue
        out = json.loads(done.stdout)
        fidelity = assess_fidelity(out["text"], out["pages"])
        results[name] = {
            "pages": out["pages"],
            "seconds": round(out["seconds"], 2),
            "pages_per_s": round(out["pages"] / out["seconds"], 1),
            "peak_rss_mib": round(out["peak_rss_mib"]),
            "fidelity": fidelity.score,
            "mean_word_length": round(fidelity.mean_word_length, 2),
            "long_word_share": round(fidelity.long_word_share, 4),
            "text_recall": round(text_recall(reference, out["text"]), 3),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=150, help="queries per manual")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    model = SentenceTransformerEmbedder(backend="torch")
    tokenizer = HuggingFaceTokenizer.from_model_dir(packaged_model_dir())
    room = context_tokens(ChunkingSpec(), model.identity)
    pandoc = ensure_pandoc()
    soffice = ensure_libreoffice() if pandoc else None
    report: dict[str, Any] = {"manuals": {}, "packages": {}, "queries_per_manual": args.queries, "k": K}
    for manual in MANUALS:
        root, version = fetch(manual)
        report["packages"][manual.package] = version
        reference_text = _read(root / manual.text).decode("utf-8", "replace")
        reference = word_counts(reference_text)
        queries = queries_of(reference_text, args.queries, manual.name)
        html_files = sorted(p for p in root.glob(manual.html) if not p.is_symlink())
        pdf_path = root / manual.pdf
        formats: dict[str, tuple[list[tuple[str, bytes]], str, bool]] = {
            "html": ([(p.name, p.read_bytes()) for p in html_files], mt.HTML, False),
            "text": ([(Path(manual.text).stem, _read(root / manual.text))], mt.PLAIN, False),
            "pdf": ([(pdf_path.name, _read(pdf_path))], mt.PDF, False),
            "pdf (pypdf)": ([(pdf_path.name, _read(pdf_path))], mt.PDF, True),
        }
        if pandoc:
            docx = [docx_of(p, CACHE / "docx" / manual.name) for p in html_files]
            formats["docx (pandoc)"] = ([(p.name, p.read_bytes()) for p in docx], mt.DOCX, False)
            if soffice:
                made = pdfs_of(docx, CACHE / "libreoffice" / manual.name)
                formats["pdf (LibreOffice)"] = ([(p.name, p.read_bytes()) for p in made], mt.PDF, False)
        sources = {
            label: source_letters(files, media_type)
            for label, (files, media_type, pypdf) in formats.items()
            if not pypdf  # the same file as "pdf"
        }
        answerable = [all(core in held for held in sources.values()) for _, core in queries]
        rows = {}
        for label, (files, media_type, pypdf) in formats.items():
            rows[label] = measure_format(
                files,
                media_type,
                reference,
                model,
                tokenizer,
                room,
                queries,
                answerable,
                manual.running_head,
                pypdf=pypdf,
            )
            shown = {k: v for k, v in rows[label].items() if k != "quarantined"}
            print(f"{manual.name:17} {label:14} {json.dumps(shown)}", flush=True)
        pdf_copy = CACHE / "pdf" / pdf_path.name.removesuffix(".gz")
        pdf_copy.parent.mkdir(parents=True, exist_ok=True)
        pdf_copy.write_bytes(_read(pdf_path))
        extractors = measure_extractors(pdf_copy, reference)
        for name, row in extractors.items():
            print(f"{manual.name:17} extractor {name:10} {json.dumps(row)}", flush=True)
        html = rows["html"]["recall@10_answerable"]
        report["manuals"][manual.name] = {
            "queries": len(queries),
            "queries_answerable": sum(answerable),
            "queries_left_out": [
                {"query": query, "not_in": [label for label, held in sources.items() if core not in held]}
                for (query, core), ok in zip(queries, answerable, strict=True)
                if not ok
            ],
            "formats": rows,
            "extractors": extractors,
            # recall@10 below the HTML's, on the queries answerable in every format
            "gap_to_html": {
                label: round(html - row["recall@10_answerable"], 3)
                for label, row in rows.items()
                if label.startswith(("pdf", "docx")) and label != "pdf (pypdf)"
            },
        }
    manuals = report["manuals"].values()
    report["targets"] = {
        "pdf_and_docx_within_0.03_of_html": all(
            gap <= TARGET_GAP for m in manuals for gap in m["gap_to_html"].values()
        ),
        "no_chunk_with_running_head_or_page_number": all(
            m["formats"][f]["chunks_with_running_head_or_page_number"] == 0
            for m in manuals
            for f in m["formats"]
            if f != "pdf (pypdf)"
        ),
        "no_good_document_quarantined": all(
            not m["formats"][f]["quarantined"] for m in manuals for f in m["formats"] if f != "pdf (pypdf)"
        ),
    }
    print(json.dumps(report["targets"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
