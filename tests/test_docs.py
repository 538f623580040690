"""The README and the pages under docs/: every link resolves inside the repository, and the README stays short.

Pure file reading (no mmrft import, no network). For each Markdown file (README.md, docs/**/*.md), every link and image
`[text](target)` / `![alt](target)`, reference definition `[name]: target` and HTML `href`/`src` outside code is
checked: http(s) and mailto targets are left alone; any other target must be a path that exists relative to the
Markdown file, lies inside the repository and is not git-ignored (a clone would not have it); a `#anchor` on a
Markdown target (or alone, for the same file) must be the slug of one of that file's headings, made as GitHub makes
it: inline markup dropped, lower case, every character but letters, digits, `_`, `-` and spaces removed, spaces
turned into hyphens, `-1`, `-2`, ... appended to repeated slugs.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 260
# the project's notes beside the repository, which a clone does not have (spelled in two pieces so that
# `git grep "\.\./shared"` finds no reference in the repository)
OUTSIDE = ".." "/shared"
FORBIDDEN = (OUTSIDE, "shared" "/DESIGN")


def markdown_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


# ------------------------------------------------------------------------------------------------ Markdown reading

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REF_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
HTML_ATTR = re.compile(r"<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
EXTERNAL = re.compile(r"^(https?:|mailto:)", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fence = [], None
    for i, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        out.append((i, line))
    return out


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks, in order."""
    blocks, fence, current = [], None, []
    for line in text.splitlines():
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence, current = m.group(1), []
            continue
        if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    return blocks


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link, image, reference definition and HTML href/src outside code."""
    found = []
    for n, line in prose_lines(text):
        m = REF_DEF.match(line)
        if m:
            found.append((n, m.group(2).strip("<>")))
            continue
        bare = INLINE_CODE.sub("", line)
        found += [(n, m.group(2).strip("<>")) for m in INLINE_LINK.finditer(bare)]
        found += [(n, m.group(1)) for m in HTML_ATTR.finditer(bare)]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = re.sub(r"<[^>]+>", "", text)  # HTML tags
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def heading_slugs(text: str) -> set[str]:
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    lines = prose_lines(text)
    for k, (n, line) in enumerate(lines):
        title = None
        m = ATX_HEADING.match(line)
        if m:
            title = m.group(2) or ""
        elif k + 1 < len(lines) and lines[k + 1][0] == n + 1 and SETEXT_UNDERLINE.match(lines[k + 1][1]) \
                and line.strip() and not line.lstrip().startswith(("|", "-", "*", ">")):
            title = line.strip()
        if title is None:
            continue
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        slugs.add(base if count == 0 else f"{base}-{count}")
    return slugs


# ------------------------------------------------------------------------------------------------ what a clone has

def ignore_patterns(root: Path) -> list[str]:
    path = root / ".gitignore"
    if not path.is_file():
        return []
    return [p.strip() for p in path.read_text().splitlines() if p.strip() and not p.startswith(("#", "!"))]


def ignored(rel: Path, is_dir: bool, patterns: list[str]) -> str | None:
    """The .gitignore pattern that excludes `rel` (a path relative to the repository root) or one of its folders."""
    parts = rel.parts
    for i in range(1, len(parts) + 1):
        sub, sub_is_dir = "/".join(parts[:i]), i < len(parts) or is_dir
        for pattern in patterns:
            dir_only = pattern.endswith("/")
            p = pattern.strip("/")
            if dir_only and not sub_is_dir:
                continue
            anchored = pattern.startswith("/") or "/" in p
            if fnmatch.fnmatchcase(sub if anchored else parts[i - 1], p):
                return pattern
    return None


def link_problems(md: Path, root: Path = ROOT) -> list[str]:
    """Every link of `md` that does not resolve, as 'file:line: target: why'."""
    text = md.read_text(encoding="utf-8")
    root = root.resolve()
    patterns = ignore_patterns(root)
    problems = []
    for n, target in links(text):
        where = f"{md.relative_to(root)}:{n}: {target!r}"
        if not target:
            problems.append(f"{where}: empty link target")
            continue
        if EXTERNAL.match(target):
            continue
        if SCHEME.match(target):
            problems.append(f"{where}: not a relative path or an http(s)/mailto address")
            continue
        path_part, _, anchor = target.partition("#")
        path_part = unquote(path_part.split("?", 1)[0])
        if not path_part:
            dest = md
        elif path_part.startswith("/"):
            dest = root / path_part.lstrip("/")
        else:
            dest = md.parent / path_part
        dest = dest.resolve()
        try:
            rel = dest.relative_to(root)
        except ValueError:
            problems.append(f"{where}: points outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{where}: no such file or directory")
            continue
        pattern = ignored(rel, dest.is_dir(), patterns)
        if pattern:
            problems.append(f"{where}: git-ignored ({pattern!r} in .gitignore), so a clone does not have it")
            continue
        if anchor and dest.suffix.lower() == ".md" and dest.is_file():
            if unquote(anchor).lower() not in heading_slugs(dest.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with the anchor #{anchor} in {rel}")
    return problems


# ------------------------------------------------------------------------------------------------ the tests

FILES = markdown_files()


@pytest.mark.parametrize("md", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_links_resolve(md):
    assert md.is_file(), f"{md.relative_to(ROOT)} is missing"
    problems = link_problems(md)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("md", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_no_reference_outside_the_repository(md):
    text = md.read_text(encoding="utf-8")
    hits = [f"{md.relative_to(ROOT)}:{n}: {s!r}" for n, line in enumerate(text.splitlines(), 1) for s in FORBIDDEN
            if s in line]
    assert not hits, "references to files a clone does not have:\n" + "\n".join(hits)


def test_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    n = len(text.splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}): move detail to docs/"
    blocks = code_blocks(text)
    assert blocks, "README.md has no code block"
    assert "make demo" in blocks[0] and "make test" in blocks[0], "README.md's first code block must hold `make demo` and `make test`"


def test_docs_index_lists_every_page():
    index = DOCS / "README.md"
    assert index.is_file(), "docs/README.md (the index of the docs pages) is missing"
    linked = {(index.parent / t.partition("#")[0]).resolve() for _, t in links(index.read_text(encoding="utf-8"))
              if t and not EXTERNAL.match(t)}
    missing = [str(p.relative_to(ROOT)) for p in FILES if p.parent == DOCS and p != index and p.resolve() not in linked]
    assert not missing, f"docs/README.md does not link to: {', '.join(missing)}"


# ------------------------------------------------------------------------------------------------ the checker itself

def test_slugs_follow_github():
    assert slug("Demo result (measured)") == "demo-result-measured"
    assert slug("FSDP2 memory (measured)") == "fsdp2-memory-measured"
    assert slug("Scaling out: one GPU, 8 GPUs, several nodes") == "scaling-out-one-gpu-8-gpus-several-nodes"
    assert slug("`mmrft eval`") == "mmrft-eval"
    assert slug("Use [your](x.md) own data") == "use-your-own-data"
    assert slug("What FSDP2 divides × 2") == "what-fsdp2-divides--2"
    assert heading_slugs("# A\n\n## A\n\n```\n# not a heading\n```\nB\n---\n") == {"a", "a-1", "b"}


def test_checker_catches_broken_links(tmp_path):
    (tmp_path / ".gitignore").write_text("results/\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.json").write_text("{}")
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Real heading\n")
    (tmp_path / "README.md").write_text(
        "# Title\n\n"
        "[ok](docs/page.md) [ok anchor](docs/page.md#real-heading) [ok self](#title) ![ok dir](docs)\n"
        "[web](https://example.com/x) `[in code](nowhere.md)`\n\n"
        "```\n[in a fence](nowhere.md)\n```\n\n"
        "[missing](docs/nope.md)\n"
        "[bad anchor](docs/page.md#no-such-heading)\n"
        f"[outside]({OUTSIDE}/DESIGN.md)\n"
        "[ignored](results/x.json)\n"
        "![missing image](docs/nope.png)\n"
        "[ref]: docs/gone.md\n")
    problems = link_problems(tmp_path / "README.md", tmp_path)
    assert len(problems) == 6, "\n".join(problems)
    for target, why in (("docs/nope.md", "no such file"), ("docs/page.md#no-such-heading", "no heading"),
                        (f"{OUTSIDE}/DESIGN.md", "outside the repository"), ("results/x.json", "git-ignored"),
                        ("docs/nope.png", "no such file"), ("docs/gone.md", "no such file")):
        assert any(repr(target) in p and why in p for p in problems), (target, problems)
