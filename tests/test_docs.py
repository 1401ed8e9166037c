"""The documentation site builds with `mkdocs build --strict`: a broken link, a broken
anchor or a page missing from the nav fails here, in the fast tier, not first in CI."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_build_strictly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the dev dependency group)")
    pytest.importorskip("material", reason="mkdocs-material is not installed (the dev group)")
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort

    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")  # mkdocs-material's end-of-life banner
    # In-process (no subprocess: fast tier); strict, as CI's `mkdocs build --strict` runs it.
    config = load_config(str(ROOT / "mkdocs.yml"), strict=True, site_dir=str(tmp_path / "site"))
    with caplog.at_level(logging.WARNING, logger="mkdocs"):
        try:
            build(config)
        except Abort as err:
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            pytest.fail(f"{err}\n" + "\n".join(warnings))
    assert (tmp_path / "site" / "index.html").is_file()
    for page in ("portability", "manifest", "caching", "reliability", "contributing"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page


def test_the_readme_is_short_and_its_links_resolve() -> None:
    """The README is the one-sitting tour (the reference is docs/), and mkdocs does not
    check its links: every relative link must name a file of the repository."""
    text = (ROOT / "README.md").read_text()
    lines = text.count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move reference material to docs/"
    targets = re.findall(r"\]\((?!https?://)([^)#\s]+)(?:#[^)\s]*)?\)", text)
    assert targets, "no relative link found: the pattern no longer matches the README's links"
    missing = sorted({t for t in targets if not (ROOT / t).exists()})
    assert not missing, f"README.md links to files that do not exist: {missing}"
