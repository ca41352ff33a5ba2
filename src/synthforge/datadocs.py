"""Offline Great Expectations Data Docs for the data gate's validation results.

``write_data_docs(results, out_dir)`` turns one or more GX ``ExpectationSuiteValidationResult``s (say
the critical and the warning suite, over one or several batches) into a folder of static HTML that a
browser reads with no network::

    from synthforge.datadocs import write_data_docs

    run = batch.validate(suite, result_format="COMPLETE")
    index = write_data_docs([critical_run, warning_run], Path("reports/data_docs"))

``out_dir`` then holds (nothing is written anywhere else; pages under ``validations/`` left by an earlier,
longer run are removed):

- ``index.html``: the summary (overall status, failed results and checks counted) and one row per
  result with its suite, data asset, status, evaluated/successful/unsuccessful expectations and the
  ``meta.id`` of each failed check, linking to
- ``validations/NN-<suite>.html``: GX's own validation results page for result NN, with a "Failed
  checks" table at the top and, on every expectation row, its status as text and its ``meta.id`` and
  ``meta.reason``;
- ``datadocs.css``: a small stylesheet (``synthforge/assets/datadocs.css``) that stands in for the
  Bootstrap and Font Awesome GX loads from CDNs, and marks failed expectations red.

The pages are rendered in memory by GX's ``ValidationResultsPageRenderer`` and
``DefaultJinjaPageView``: no data context or Data Docs site is involved (an ephemeral context's site
would write to a temp dir it never removes). GX's page chrome that pulls CDN assets (script imports,
navbar logo, footer, jQuery-only filter card) is replaced, and every page is then scrubbed of
``<script>``s, remote URLs (src/href attributes, CSS ``url()`` and ``@import``) and links to pages not
written, so opening it makes no network request (``make_offline`` is that scrub). Without JavaScript,
GX's sort/search/"Failed Only" controls are gone and collapsed blocks are shown open.

Same results in, same bytes out: element ids are numbered instead of random and no render time is
stamped; what can differ between two validations of the same data is what GX puts in the results
themselves (``batch_markers.ge_load_time``).
"""

from __future__ import annotations

import copy
import html
import itertools
import posixpath
import re
from collections import defaultdict
from importlib import resources
from pathlib import Path

_CSS = "datadocs.css"
_TABLE_LEVEL = "Table-Level Expectations"  # GX's section for expectations without a column

# GX templates overridden: theirs load jQuery/Bootstrap/Vega/Font Awesome and images from CDNs.
_TEMPLATES = {
    "js_script_imports.j2": '<link rel="stylesheet" href="{{ datadocs_css }}">',
    "favicon.j2": "",
    "cloud-footer.j2": "",
    "page_action_card.j2": "",  # its "Failed Only" filter needs jQuery
    "top_navbar.j2": (
        '<nav class="navbar sf-navbar border-bottom"><a class="navbar-brand" href="{{ home_url }}">'
        "{{ docs_title | e }}</a>{% if page_title %}"
        '<span class="sf-page-title">{{ page_title | e }}</span>{% endif %}</nav>'
    ),
}

_SCRIPT = re.compile(r"<script\b.*?</script\s*>", re.S | re.I)
_REMOTE = r"""(?:[a-z][a-z0-9+.-]*:)?//"""  # http://, https://, file://, //host ...
_REMOTE_TAG = re.compile(  # tags that fetch as soon as the page loads: dropped whole
    rf"""<(?:link|img|iframe|frame|embed|source|object|audio|video|base|meta)\b[^>]*?=\s*["']?\s*{_REMOTE}[^>]*>""",
    re.I)
_URL_ATTR = re.compile(
    r"""\s(?:src|href|srcset|action|formaction|poster|background|data)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_CSS_IMPORT = re.compile(rf"""@import\s+(?:url\()?\s*["']?\s*{_REMOTE}[^;]*;""", re.I)
_CSS_URL = re.compile(rf"""url\(\s*["']?\s*{_REMOTE}[^)]*\)""", re.I)


def write_data_docs(results: list, out_dir: Path, title: str = "synthforge data gate") -> Path:
    """Write offline Data Docs for GX validation ``results`` (a list, or one) to ``out_dir``; its index.html."""
    results = [results] if hasattr(results, "results") else list(results)
    if not results:
        raise ValueError("write_data_docs needs at least one validation result")
    pages = {f"validations/{n:02d}-{_slug(r.suite_name)}.html": r for n, r in enumerate(results, 1)}
    docs = {path: _result_page(result, n, title) for n, (path, result) in enumerate(pages.items(), 1)}
    docs["index.html"] = _index_page(pages, title)
    _write(Path(out_dir), docs)
    return Path(out_dir) / "index.html"


# --- per-result pages: GX's renderer, annotated -----------------------------------------------------

def _result_page(result, n: int, title: str) -> str:
    from great_expectations.render.renderer import ValidationResultsPageRenderer

    result = copy.copy(result)  # GX's renderer may write into result.meta
    result.meta = copy.deepcopy(result.meta)
    doc = ValidationResultsPageRenderer().render(result)
    doc.page_title = f"Validation {n}: {result.suite_name}"
    _name_asset(doc, _asset(result))
    _annotate_rows(doc, result)
    doc.sections[0].content_blocks.insert(1, _failed_block(result))
    return _render(doc, title, depth=1)


def _name_asset(doc, asset: str) -> None:
    """GX's header looks for the asset name in batch_spec, where fluent data sources do not put it."""
    subheader = getattr(doc.sections[0].content_blocks[0], "subheader", None)
    params = (getattr(subheader, "string_template", None) or {}).get("params", {})
    if params.get("data_asset_name") is None and asset:
        params["data_asset_name"] = asset


def _annotate_rows(doc, result) -> None:
    """Give each expectation row of GX's column tables its status as text and a "Check" cell."""
    by_column = defaultdict(list)
    for evr in result.results:  # GX lists the rows of each column section in this order
        by_column[evr.expectation_config.kwargs.get("column", _TABLE_LEVEL)].append(evr)
    for section in doc.sections[1:]:
        evrs = by_column.get(section.section_name, [])
        for block in section.content_blocks:
            if getattr(block, "content_block_type", None) == "table" and len(block.table) == len(evrs):
                _annotate_table(block, evrs)


def _annotate_table(block, evrs) -> None:
    if block.header_row:
        block.header_row = [block.header_row[0], "Check", *block.header_row[1:]]
    for row, evr in zip(block.table, evrs):
        params = (getattr(row[0], "string_template", None) or {}).get("params", {})
        if "icon" in params:  # GX's status icon: an empty <i>, invisible without Font Awesome
            params["icon"] = _status(evr)
        row.insert(1, _text("$id\n$reason", id=(_check_id(evr), ["sf-check-id"]),
                            reason=(_meta(evr, "reason"), ["sf-reason", "text-muted"])))


def _failed_block(result):
    from great_expectations.render import RenderedTableContent

    failed = [evr for evr in result.results if not evr.success]
    if not failed:
        return _text("No failed checks: all $n passed.", n=(len(result.results), []), block=["col-12", "sf-all-passed"])
    rows = [[_text("$v", v=(_check_id(evr), ["sf-check-id"])), _text("$v", v=(_meta(evr, "reason"), [])),
             _text("$v", v=(evr.expectation_config.type, ["badge", "badge-secondary"])),
             _text("$v", v=(evr.expectation_config.kwargs.get("column", ""), [])),
             _text("$v", v=(_unexpected(evr), []))] for evr in failed]
    return RenderedTableContent(
        header=_text("Failed checks ($n)", n=(len(failed), []), tag="h6"),
        header_row=["Check", "Reason", "Expectation", "Column", "Unexpected"], table=rows,
        styling={"classes": ["col-12", "table-responsive", "mt-1", "p-1", "sf-failed"],
                 "body": {"classes": ["table", "table-sm"]}})


# --- index page ---------------------------------------------------------------------------------

def _index_page(pages: dict, title: str) -> str:
    from great_expectations.render import RenderedDocumentContent, RenderedSectionContent

    sections = [RenderedSectionContent(section_name="Summary", content_blocks=[_summary_block(pages, title)]),
                RenderedSectionContent(section_name="Validation results", content_blocks=[_results_table(pages)])]
    doc = RenderedDocumentContent(sections=sections, renderer_type="SiteIndexPageRenderer", page_title=None)
    return _render(doc, title, depth=0)


def _summary_block(pages: dict, title: str):
    from great_expectations.render import RenderedHeaderContent

    results = list(pages.values())
    ok = all(r.success for r in results)
    failed_checks = sum(1 for r in results for evr in r.results if not evr.success)
    return RenderedHeaderContent(
        header=_text("$title", title=(title, []), tag="h5"),
        subheader=_text(
            "Status: $status\n$n validation results, $bad failed; $checks failed checks",
            status=("passed" if ok else "failed", ["sf-status", "text-success" if ok else "text-danger"]),
            n=(len(results), []), bad=(sum(not r.success for r in results), []), checks=(failed_checks, [])),
        styling={"classes": ["col-12", "p-0", "sf-summary"], "header": {"classes": ["alert", "alert-secondary"]}})


def _results_table(pages: dict):
    from great_expectations.render import RenderedTableContent

    rows = []
    for n, (path, r) in enumerate(pages.items(), 1):
        stats, failed = r.statistics, [evr for evr in r.results if not evr.success]
        ids = ", ".join(_check_id(evr) for evr in failed)
        rows.append([n, _text("$v", v=(r.suite_name, []), href=path), _text("$v", v=(_asset(r), [])),
                     _text("$v", v=_status_param(r.success)),
                     stats.get("evaluated_expectations"), stats.get("successful_expectations"),
                     stats.get("unsuccessful_expectations"), _text("$v", v=(ids or "-", ["sf-check-id"]))])
    return RenderedTableContent(
        header_row=["#", "Suite", "Data asset", "Status", "Evaluated", "Successful", "Unsuccessful", "Failed checks"],
        table=rows, styling={"classes": ["col-12", "table-responsive", "sf-results"],
                             "body": {"classes": ["table", "table-sm"]}})


# --- small helpers ------------------------------------------------------------------------------

def _text(template: str, *, tag: str = "span", href: str | None = None, block=None, **params):
    """A GX string template; each param is (value, css classes) and is HTML-escaped by GX.

    ``block`` are css classes of the component when it stands alone in a section (e.g. ``col-12``).
    """
    from great_expectations.render import RenderedStringTemplateContent

    styling = {"params": {k: {"classes": list(c)} for k, (_, c) in params.items()}}
    if href is not None:
        for style in styling["params"].values():
            style.update(tag="a", attributes={"href": href})
    string_template = {"template": template, "tag": tag, "styling": styling,
                       "params": {k: str(v) for k, (v, _) in params.items()}}
    return RenderedStringTemplateContent(string_template, styling={"classes": block} if block else None)


def _meta(evr, key: str) -> str:
    return str((evr.expectation_config.meta or {}).get(key) or "")


def _check_id(evr) -> str:
    return _meta(evr, "id") or "(no id)"


def _status(evr) -> str:
    info = evr.exception_info or {}
    raised = info.get("raised_exception") if "raised_exception" in info else any(
        isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    return "error" if raised else "passed" if evr.success else "failed"


def _status_param(success: bool) -> tuple:
    return ("passed", ["sf-status", "text-success"]) if success else ("failed", ["sf-status", "text-danger"])


def _unexpected(evr) -> str:
    res = evr.result or {}
    if res.get("unexpected_count") is None:
        return str(res.get("observed_value", ""))
    percent = res.get("unexpected_percent")
    return f"{res['unexpected_count']}" + (f" ({percent:.1f}%)" if isinstance(percent, (int, float)) else "")


def _asset(result) -> str:
    return str((result.meta.get("active_batch_definition") or {}).get("data_asset_name")
               or (result.meta.get("batch_spec") or {}).get("data_asset_name") or "")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.") or "suite"


# --- rendering and offline scrubbing ------------------------------------------------------------

def _render(doc, title: str, depth: int) -> str:
    """GX's page view with CDN-loading templates replaced and element ids numbered (not uuid4)."""
    from great_expectations.render.view import DefaultJinjaPageView
    from jinja2 import ChoiceLoader, DictLoader

    view = DefaultJinjaPageView()
    view.env.loader = ChoiceLoader([DictLoader(_TEMPLATES), view.env.loader])
    ids = itertools.count(1)
    view.env.filters["generate_html_element_uuid"] = lambda prefix=None: f"{prefix or 'id-'}{next(ids)}"
    up = "../" * depth
    page = view.render(doc, docs_title=title, home_url=f"{up}index.html", datadocs_css=f"{up}{_CSS}")
    return _retitle(page, title if doc.page_title is None else f"{doc.page_title} - {title}")


def _retitle(page: str, title: str) -> str:
    page = page.replace("<title></title>", "", 1)
    return re.sub(r"<title>.*?</title>", lambda _: f"<title>{html.escape(title)}</title>", page, count=1, flags=re.S)


def make_offline(page: str, path: str, written: set[str]) -> str:
    """``page`` (at ``path`` in the docs folder) without scripts, remote URLs, or links to unwritten files."""
    page = _SCRIPT.sub("", page)
    page = _REMOTE_TAG.sub("", page)
    page = _CSS_IMPORT.sub("", page)
    page = _CSS_URL.sub("none", page)
    return _URL_ATTR.sub(lambda m: _keep_url(m, path, written), page)


def _keep_url(match: re.Match, path: str, written: set[str]) -> str:
    url = html.unescape(match.group(1).strip("\"'")).strip()
    if re.match(_REMOTE, url, re.I):
        return ""
    target = url.split("#", 1)[0].split("?", 1)[0]
    if not target or re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # "#anchor", data:, mailto:
        return match.group(0)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return match.group(0) if resolved in written else ""


def _write(out_dir: Path, docs: dict[str, str]) -> None:
    written = {*docs, _CSS}
    (out_dir / "validations").mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "validations").glob("*.html"):  # pages of an earlier, longer run
        if f"validations/{stale.name}" not in written:
            stale.unlink()
    css = resources.files("synthforge").joinpath("assets", _CSS).read_bytes()
    (out_dir / _CSS).write_bytes(css)
    for path, page in docs.items():
        (out_dir / path).write_text(make_offline(page, path, written), encoding="utf-8", newline="\n")
