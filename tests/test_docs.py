"""The documentation holds together: links resolve, code cites pages that exist, the README renders."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_LIMIT = 8_500  # bytes: the README is the pitch and the quick start; the rest is in docs/

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(?<!\\)\[(?:[^\]\n]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_CITATION = re.compile(r"docs/([A-Za-z0-9_.-]+\.md)((?:(?:,\s*|\s+and\s+|\s+)§\d+)*)")
_PRIVATE_NOTES = re.compile(r"truenas-protocol\.md|perf-notes\.md|design\.md|style-and-reliability\.md|"
                            r"style-examples\.md|peers\.md|shared/docs")


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where links and headings live."""
    return _INLINE_CODE.sub("", _FENCE.sub("", text))


def _headings(text: str) -> list[str]:
    return [title for _, title in _HEADING.findall(_FENCE.sub("", text))]


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lowercase, punctuation but - and _ gone, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)   # a link keeps its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a page, with GitHub's -1, -2 ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    result = set()
    for title in _headings(path.read_text(encoding="utf-8")):
        slug = github_slug(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def broken_links(page: Path) -> list[str]:
    problems = []
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto: are not checked here
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            problems.append(f"{page.name}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{page.name}: {target}: no heading with anchor #{anchor}")
    return problems


def section_numbers(path: Path) -> set[str]:
    """The numbers of a page's numbered headings: '## 3. Errors' -> '3'."""
    return {m.group(1) for title in _headings(path.read_text(encoding="utf-8"))
            if (m := re.match(r"(\d+(?:\.\d+)*)\.?\s", title))}


def bad_citations(source: Path, text: str | None = None) -> list[str]:
    """Citations of docs/ pages (and their §N) in `source` that point nowhere."""
    problems = []
    text = source.read_text(encoding="utf-8") if text is None else text
    for match in _CITATION.finditer(text):
        page = ROOT / "docs" / match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        where = f"{source.relative_to(ROOT)}:{line}"
        if not page.exists():
            problems.append(f"{where}: docs/{match.group(1)} does not exist")
            continue
        numbers = section_numbers(page)
        problems += [f"{where}: docs/{match.group(1)} has no section §{n}"
                     for n in re.findall(r"§(\d+)", match.group(2)) if n not in numbers]
    return problems


def test_github_slug_follows_githubs_rules() -> None:
    assert github_slug("6. Rate limits") == "6-rate-limits"
    assert github_slug("13. The official command line, `midclt`") == "13-the-official-command-line-midclt"
    assert github_slug("Why `local/`, `errors.py` and `secret.py` sit at the bottom") == (
        "why-local-errorspy-and-secretpy-sit-at-the-bottom")


def test_docs_exist() -> None:
    assert {page.name for page in DOCS} >= {
        "architecture.md", "cli.md", "inventory.md", "rollouts.md", "python-api.md",
        "simulator.md", "protocol.md", "performance.md", "benchmarks.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# Title\n\n## 2. A section\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md#2-a-section) [b](gone.md) [c](there.md#nope) `[d](gone.md)`\n"
                    "```\n[e](gone.md)\n```\n", encoding="utf-8")
    assert broken_links(page) == ["page.md: gone.md: no such file",
                                  "page.md: there.md#nope: no heading with anchor #nope"]


def test_readme_links_every_docs_page() -> None:
    linked = {Path(target.partition("#")[0]).name for target in _LINK.findall(_prose(README.read_text()))}
    assert [page.name for page in DOCS if page.name not in linked] == []


@pytest.mark.parametrize("source", sorted((ROOT / "fleetclt").rglob("*.py")),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_code_cites_docs_that_exist(source: Path) -> None:
    assert bad_citations(source) == []


def test_a_citation_of_a_missing_section_is_reported() -> None:
    source = ROOT / "fleetclt" / "_citation_probe.py"
    text = '"""See docs/protocol.md §6 and §99, and docs/nowhere.md."""\n'
    assert bad_citations(source, text) == ["fleetclt/_citation_probe.py:1: docs/protocol.md has no section §99",
                                     "fleetclt/_citation_probe.py:1: docs/nowhere.md does not exist"]


def test_private_notes_are_never_cited() -> None:
    code = [path for top in ("fleetclt", "tests", "bench", "scripts") for path in sorted((ROOT / top).rglob("*.py"))
            if path != Path(__file__).resolve()]
    sources = [*PAGES, ROOT / "bench" / "README.md", *code]
    cited = [str(path.relative_to(ROOT)) for path in sources if _PRIVATE_NOTES.search(path.read_text())]
    assert cited == []


def test_readme_renders_as_the_long_description() -> None:
    from readme_renderer.markdown import render

    html = render(README.read_text(encoding="utf-8"))
    assert html is not None, "readme_renderer could not render README.md"
    assert "<h1" in html and 'id="user-content-development"' in html and "<pre" in html


def test_readme_is_short() -> None:
    assert README.stat().st_size < README_LIMIT
