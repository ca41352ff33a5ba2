"""Offline GX Data Docs: no page refers to a remote URL, only ``out_dir`` is written, the same results give the
same bytes, and headless Chromium with no network (a recording proxy) shows the failed checks by id."""

from __future__ import annotations

import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from synthforge.datadocs import make_offline, write_data_docs

FAILING = ("tool_present", "arguments_short")
PASSING = "tool_known"
# a src/href/... attribute, CSS url() or @import whose URL is http://, https:// or protocol-relative //
REMOTE_REF = re.compile(r"""(?:\b(?:src|href|srcset|action|poster)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)\s*"""
                        r"""(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def results():
    """A critical suite (2 of 3 checks fail) and a passing warning suite, validated by an ephemeral context."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    from synthforge.suites import ephemeral_context

    frame = pd.DataFrame({"tool": ["read_file", "write_file", None, "search"],
                          "arguments": ['{"path": "a"}', "{}", '{"q": 1}', '{"q": "' + "x" * 40 + '"}']})
    critical = gx.ExpectationSuite(name="critical", expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="tool",
                                          meta={"id": "tool_present", "reason": "Every call names a tool."}),
        gxe.ExpectColumnValueLengthsToBeBetween(column="arguments", min_value=2, max_value=20, meta={
            "id": "arguments_short", "reason": "Arguments are < 20 characters & JSON."}),
        gxe.ExpectColumnValuesToBeInSet(column="tool", value_set=["read_file", "write_file", "search"],
                                        meta={"id": "tool_known", "reason": "Only catalog tools are called."}),
    ])
    warning = gx.ExpectationSuite(name="warning", expectations=[
        gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=100,
                                           meta={"id": "row_count_sane", "reason": "A batch is not empty."})])
    with ephemeral_context() as context:
        asset = context.data_sources.add_pandas("gate").add_dataframe_asset("rows")
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
        return [batch.validate(suite, result_format="COMPLETE") for suite in (critical, warning)]


@pytest.fixture
def docs(results, tmp_path) -> Path:
    index = write_data_docs(results, tmp_path / "data_docs")
    assert index == tmp_path / "data_docs" / "index.html"
    return index.parent


def test_pages_refer_to_no_remote_url(docs, results):
    assert not results[0].success and results[1].success  # the data is as the tests below expect
    pages = sorted(docs.rglob("*.html"))
    assert [p.relative_to(docs).as_posix() for p in pages] == [
        "index.html", "validations/01-critical.html", "validations/02-warning.html"]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not REMOTE_REF.findall(text), f"{page.name} refers to a remote URL"
        assert "<script" not in text.lower()
        assert "datadocs.css" in text
    assert (docs / "datadocs.css").read_text(encoding="utf-8").count("{") > 20
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert 'href="validations/01-critical.html"' in index and 'href="validations/02-warning.html"' in index


def test_writes_only_out_dir_and_same_results_give_same_bytes(results, tmp_path, monkeypatch):
    scratch, cwd = tmp_path / "tmp", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(cwd)
    first, second = tmp_path / "a", tmp_path / "b"
    write_data_docs(results, first)
    write_data_docs(results, second, title="synthforge data gate")
    assert not any(scratch.iterdir()) and not any(cwd.iterdir())
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    stale = first / "validations" / "07-old.html"
    stale.write_text("old", encoding="utf-8")
    write_data_docs(results[:1], first)
    assert sorted(p.name for p in (first / "validations").iterdir()) == ["01-critical.html"]


def test_make_offline_drops_remote_references_and_dangling_links():
    page = """<link rel="stylesheet" href="https://cdn.example/b.css"><script src="//cdn.example/j.js"></script>
<script>fetch("https://x.example")</script><style>@import url("https://fonts.example/f.css");
a { background: url('http://img.example/x.png') }</style><img src="https://img.example/logo.png" alt="logo">
<a href="https://greatexpectations.io">GX</a> <a href="../index.html">home</a> <a href="missing.html">gone</a>
<a href="#section-1">top</a> <img src="data:image/png;base64,AAAA">"""
    out = make_offline(page, "validations/01-x.html", {"index.html", "validations/01-x.html"})
    assert not REMOTE_REF.findall(out) and "example" not in out and "<script" not in out
    assert "<a>GX</a>" in out and '<a href="../index.html">home</a>' in out and "<a>gone</a>" in out
    assert 'href="#section-1"' in out and 'src="data:image/png' in out


class _Texts(HTMLParser):
    """The text of every element that ``want(tag, classes)`` picks, nested ones included."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, want):
        super().__init__()
        self.want, self.stack, self.found = want, [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            classes = (dict(attrs).get("class") or "").split()
            self.stack.append((tag, [] if self.want(tag, classes) else None))

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, text = self.stack.pop()
            if text is not None:
                self.found.append(" ".join(" ".join(text).split()))
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, text in self.stack:
            if text is not None:
                text.append(data)


def texts(dom: str, want) -> list[str]:
    parser = _Texts(want)
    parser.feed(dom)
    return parser.found


def test_chromium_offline_shows_failed_checks(docs, offline_browser, tmp_path):
    control = tmp_path / "control.html"  # the recorder does see what a page fetches
    control.write_text('<p>x</p><img src="http://img.example.invalid/x.png">', encoding="utf-8")
    dom, requested = offline_browser(control)
    assert "<p>x</p>" in dom and any("img.example.invalid" in line for line in requested), requested

    dom, requested = offline_browser(docs / "index.html")
    assert "</table>" in dom and not requested, requested
    rows = texts(dom, lambda tag, _: tag == "tr")
    critical = next(row for row in rows if " critical " in f" {row} ")
    assert "failed" in critical and all(check in critical for check in FAILING) and PASSING not in critical
    assert "passed" in next(row for row in rows if " warning " in f" {row} ")

    dom, requested = offline_browser(docs / "validations" / "01-critical.html")
    assert not requested, requested
    failed_part = texts(dom, lambda _, classes: "sf-failed" in classes)
    assert len(failed_part) == 1 and all(check in failed_part[0] for check in FAILING)
    assert PASSING not in failed_part[0] and "Arguments are < 20 characters & JSON." in failed_part[0]
    rows = texts(dom, lambda tag, _: tag == "tr")
    for check in FAILING:
        assert any(check in row and row.startswith("failed") for row in rows), check
    passing = [row for row in rows if PASSING in row]
    assert passing and all(row.startswith("passed") for row in passing), passing
