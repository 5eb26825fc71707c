"""The reference in docs/ keeps up with the code: every setting, command and flag the code defines
is documented, every one documented exists, and every relative link of the README and docs/
leads somewhere."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hyperion_pipelines.cli import build_parser
from hyperion_pipelines.settings import ENV_PREFIX, RETIRED

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PACKAGE = REPO / "hyperion_pipelines"


def settings_in_code() -> set[str]:
    """Variables read through ``Settings`` (``_get(env, "NAME", ...)``) and secrets bound by name."""
    names = set(re.findall(r'_get\(env, "([A-Z0-9_]+)"', (PACKAGE / "settings.py").read_text()))
    found = {ENV_PREFIX + name for name in names}
    for path in PACKAGE.rglob("*.py"):
        found.update(re.findall(r"[\"'](HYPERION_[A-Z0-9_]+)[\"']", path.read_text(encoding="utf-8")))
    return found - {ENV_PREFIX + name for name in RETIRED}


def settings_documented() -> set[str]:
    """The first column of configuration.md's table."""
    text = (DOCS / "configuration.md").read_text()
    return set(re.findall(r"^\| `(HYPERION_[A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_every_setting_is_documented_and_every_documented_one_is_read() -> None:
    code, documented = settings_in_code(), settings_documented()
    assert len(code) > 30  # the scan found the settings, not nothing
    assert sorted(code - documented) == [], "settings the code reads that docs/configuration.md lacks"
    assert sorted(documented - code) == [], "settings docs/configuration.md lists that the code does not read"


def commands_in_code() -> dict[str, list[frozenset[str]]]:
    """``hyperion`` command -> its options, each as its spellings (``{"-v", "--verbose"}``)."""
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {
        name: [frozenset(a.option_strings) for a in sub._actions if a.option_strings and a.dest != "help"]
        for name, sub in subparsers.choices.items()
    }


def commands_documented() -> dict[str, set[str]]:
    """The usage block of command_line.md: one ``hyperion <command> ...`` line per command."""
    text = (DOCS / "command_line.md").read_text()
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    documented: dict[str, set[str]] = {}
    for line in block.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "hyperion":
            documented[words[1]] = set(re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", " ".join(words[2:])))
    return documented


def test_every_command_and_flag_is_documented_and_every_documented_one_exists() -> None:
    code, documented = commands_in_code(), commands_documented()
    assert sorted(code) == sorted(documented), "commands: the parser against docs/command_line.md"
    for command, options in code.items():
        missing = [sorted(spellings) for spellings in options if not spellings & documented[command]]
        assert missing == [], f"hyperion {command}: flags missing from the docs"
        unknown = documented[command] - set().union(*options) if options else documented[command]
        assert sorted(unknown) == [], f"hyperion {command}: documented flags it lacks"


def test_every_help_shows_an_example() -> None:
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in subparsers.choices.items():
        assert f"hyperion {name}" in (sub.epilog or ""), f"hyperion {name} --help has no example"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_lead_to_files_and_headings() -> None:
    pages = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path_part, _, anchor = target.partition("#")
            linked = (page.parent / path_part).resolve() if path_part else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.MULTILINE)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    unlinked = [page.name for page in DOCS.glob("*.md") if f"docs/{page.name}" not in readme]
    assert unlinked == []
