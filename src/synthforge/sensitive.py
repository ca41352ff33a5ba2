"""Find secrets and e-mail addresses in text, for the data gate's leak check.

The gate uses this to reject training rows that leak credentials or personal
e-mail addresses, and :meth:`Scanner.redact` to write those rows to the
rejected file without the leaked values::

    from synthforge.sensitive import Scanner

    scanner = Scanner()                      # allowed domains: example.com/.org/.net
    findings = scanner.scan(text)            # [Finding(kind="secret", type="AWS Access Key", ...)]
    if findings:
        quarantined = scanner.redact(text)   # "... [REDACTED AWS Access Key] ..."

Secrets are found by the regex plugins of Yelp's ``detect-secrets`` (1.5.x):
the verdict, the value and the type name all come from a plugin's
``analyze_string``. Only plugins for concrete credential formats are used,
where a match is almost always a real credential:

    ArtifactoryDetector, AWSKeyDetector, AzureStorageKeyDetector,
    BasicAuthDetector, CloudantDetector, DiscordBotTokenDetector,
    GitHubTokenDetector, GitLabTokenDetector, IbmCloudIamDetector,
    IbmCosHmacDetector, JwtTokenDetector, MailchimpDetector, NpmDetector,
    OpenAIDetector, PrivateKeyDetector, PypiTokenDetector, SendGridDetector,
    SlackDetector, SoftlayerDetector, SquareOAuthDetector, StripeDetector,
    TelegramBotTokenDetector, TwilioKeyDetector

Left out on purpose: ``Base64HighEntropyString`` and ``HexHighEntropyString``
(they flag commit hashes, digests, UUIDs and base64 blobs, which coding
conversations are full of), ``KeywordDetector`` (it flags code such as
``password = input()``), and ``IPPublicDetector`` (an IP address is not a
credential). Values are then passed through detect-secrets' own secret-level
false-positive filters (templated ``{password}`` / ``<password>`` /
``${PASSWORD}``, ``$``-prefixed, sequential strings, UUIDs, no letters), as
its default scan does.

Basic-auth URLs (``scheme://user:password@host``) whose host is local or
reserved (``localhost``, a loopback address, a one-label host like ``db``, an
allowed domain, or a reserved top-level name, see below) are not findings:
coding answers are full of placeholder connection strings such as
``postgresql://user:secret@localhost:5432/app``.

E-mail addresses are ``local@domain.tld`` (a dotted domain with an alphabetic
top-level label). They are not findings when the domain is an allowed domain
or a subdomain of one, when the top-level label is reserved (``test``,
``example``, ``invalid``, ``localhost`` by RFC 2606/6761, ``local`` by RFC
6762), when the user is ``git`` (the SSH user of git hosting, as in
``git@github.com:org/repo.git``), or when ``user@`` is the user part of a URL
(``ssh://deploy@build.acme.io``). A letter right after a backslash is an
escape, not part of the address (``\\n@app.route`` in JSON-escaped text).

``redact`` replaces the reported value (a private key from ``-----BEGIN`` to
``-----END ...-----``, a JWT with its signature) and repeats until ``scan``
finds nothing, since a marker can complete a pattern
(``[REDACTED GitHub Token] = "..."`` reads as a keyword assignment).

Speed: running every plugin on every line costs milliseconds per row. Each
plugin has gates instead: regexes with a literal first character (the
fastest search ``re`` has) that occur on every line where the plugin's
patterns match (``AKIA...`` for AWS, ``eyJ`` for a JWT, ``key``/``pwd``/
``pass``/``token`` followed by an assigned long value for the keyword
patterns, ...). Gates that share a first character are searched for in one
pass, a dozen passes in all (one union regex for short texts), so clean
text costs about 10 µs per KB; a plugin runs only on the lines where one of
its gates hit, line by line as detect-secrets scans. Plugins are built directly, so no detect-secrets global
settings are read or changed, and nothing is verified over the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

EMAIL_TYPE = "E-mail address"
DEFAULT_ALLOWED_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
RESERVED_TLDS = frozenset({"test", "example", "invalid", "localhost", "local"})  # RFC 2606, 6761, 6762

_REDACT_ROUNDS = 8
_SHORT_TEXT = 160  # up to this length one union regex beats a search per pass
_WITHHELD = "[REDACTED text: findings remained after redaction]"
_INSTALL_HINT = "synthforge.sensitive needs detect-secrets: pip install 'detect-secrets>=1.5'"
_PRIVATE_KEY = "Private Key"
_JWT = "JSON Web Token"
_BASIC_AUTH = "Basic Auth Credentials"


@dataclass(frozen=True)
class Finding:
    """One secret or e-mail address found in a text.

    ``kind`` is ``"secret"`` or ``"email"``; ``type`` is the detect-secrets
    secret type (e.g. ``"AWS Access Key"``) or ``"E-mail address"``;
    ``redacted`` is a short excerpt with the value masked, never the value.
    """

    kind: str
    type: str
    redacted: str


@dataclass(frozen=True)
class _Gate:
    """A cheap necessary condition for a plugin match, checked before the plugin runs.

    ``anchor + rest`` is a regex found on every line where the plugin's
    patterns match; when ``lower`` (the plugin's pattern ignores case) it is
    searched for in the lower-cased text. Gates that share an anchor character
    are searched for in one pass over the text: a regex with a literal first
    character is the fastest search ``re`` has. ``line``, when set, is a
    stricter regex the lower-cased line must also contain.
    """

    anchor: str  # a literal first character
    rest: str
    lower: bool = False
    line: str = ""

    @property
    def regex(self) -> str:
        return f"{re.escape(self.anchor)}(?:{self.rest})"


# Keyword patterns, lower-cased: key|pwd|pw|password|pass|token, then either an
# assignment and a 24+ character value (build_assignment_regex, as used by the
# Cloudant/IBM/SoftLayer plugins) or a quoted 40-character value within 20
# characters (AWSKeyDetector's aws ... key ... "<secret access key>").
_ASSIGNED = r"['\"]?\]?[ =:>]+['\"]?[a-z0-9_-]{24}|.{0,20}?['\"][0-9a-z/+]{40}['\"]"
_KEYWORD = tuple(
    _Gate(anchor, f"(?:{rest})(?:{_ASSIGNED})", lower=True)
    for anchor, rest in (("k", "ey"), ("p", "wd?|ass(?:word)?"), ("t", "oken"))
)
_USERINFO = r"//[^\s:/@]+:[^\s:/@]+@"  # after the ":" of scheme://user:password@

# (module in detect_secrets.plugins, class, gates): every match of the plugin's
# denylist patterns lies on a line where one of its gates matches.
_PLUGINS: tuple[tuple[str, str, tuple[_Gate, ...]], ...] = (
    ("artifactory", "ArtifactoryDetector", (_Gate("A", r"KC[a-zA-Z0-9]{10}|P[\dA-F][a-zA-Z0-9]{8}"),)),
    ("aws", "AWSKeyDetector", (
        _Gate("A", r"(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)[0-9A-Z]{16}"),
        *_KEYWORD,
    )),
    ("azure_storage_key", "AzureStorageKeyDetector", (_Gate("A", "ccountKey="),)),
    ("basic_auth", "BasicAuthDetector", (_Gate(":", _USERINFO),)),
    ("cloudant", "CloudantDetector", (_Gate(":", _USERINFO, line="cloudant"), *_KEYWORD)),
    ("discord", "DiscordBotTokenDetector", (_Gate(".", r"[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),)),
    ("github_token", "GitHubTokenDetector", (_Gate("_", r"(?<=gh[pousr]_)[A-Za-z0-9_]{36}"),)),
    ("gitlab_token", "GitLabTokenDetector", (
        _Gate("-", r"(?<=gl(?:dt|ft|rt)-)|(?<=gl(?:pat|cbt|imt|ptt|oas)-)|(?<=glsoat-)|(?<=glagent-)"),
        _Gate("G", "R1348941"),
    )),
    ("ibm_cloud_iam", "IbmCloudIamDetector", _KEYWORD),
    ("ibm_cos_hmac", "IbmCosHmacDetector", _KEYWORD),
    ("jwt", "JwtTokenDetector", (_Gate("J", "(?<=eyJ)"),)),
    ("mailchimp", "MailchimpDetector", (_Gate("-", "us[0-9]"),)),
    ("npm", "NpmDetector", (_Gate(":", "_authToken="),)),
    ("openai", "OpenAIDetector", (_Gate("J", "(?<=T3BlbkFJ)"),)),
    ("private_key", "PrivateKeyDetector", (
        _Gate("K", "EY(?<=PRIVATE KEY)"),
        _Gate("K", "ey-File-2(?<=PuTTY-User-Key-File-2)"),
    )),
    ("pypi_token", "PypiTokenDetector", (_Gate("A", "gE(?<=pypi-AgE)"),)),
    ("sendgrid", "SendGridDetector", (_Gate(".", r"(?<=SG\.)[a-zA-Z0-9_-]{22}\."),)),
    ("slack", "SlackDetector", (
        _Gate("-", "(?<=(?i:xox[abposr])-)"),
        _Gate(":", r"//(?i:hooks\.slack\.com)"),
    )),
    ("softlayer", "SoftlayerDetector", (_Gate(":", "//(?i:api)", line="softlayer"), *_KEYWORD)),
    ("square_oauth", "SquareOAuthDetector", (_Gate("-", "(?<=sq0csp-)"),)),
    ("stripe", "StripeDetector", (_Gate("_", "live_(?<=k_live_)"),)),
    ("telegram_token", "TelegramBotTokenDetector", (_Gate(":", r"(?<=\d{8}:)[0-9A-Za-z_-]{35}"),)),
    ("twilio", "TwilioKeyDetector", (_Gate("A", "C[a-z0-9]{32}"), _Gate("K", "(?<=SK)[a-z0-9]{32}"))),
)

# detect-secrets' default secret-level false-positive filters (detect_secrets.filters.heuristic).
_FILTERS = (
    "is_templated_secret",
    "is_prefixed_with_dollar_sign",
    "is_sequential_string",
    "is_potential_uuid",
    "is_not_alphanumeric_string",
)

_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]*")
_JWT_CHARS = re.compile(r"[A-Za-z0-9_\-.+/=]*")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*-----")
# A blank line (also JSON-escaped) or a double quote ends a key block that has no END marker.
_KEY_BLOCK_END = re.compile(r'\n[ \t\r]*\n|\\n\\n|"')
_HOST = re.compile(r"\[[0-9A-Fa-f:.]*\]|[^\s/:?#@\"'<>]*")
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_LOCAL_REVERSED = re.compile(r"[A-Za-z0-9._%+-]{1,64}")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])"
)
_URL_USERINFO = re.compile(r"://[^\s\"'<>()\[\]]*\Z")


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str
    type: str
    redacted: str


@dataclass(frozen=True)
class _CompiledGate:
    regex: re.Pattern[Any]  # bytes, searched in the lowered line, for a lower-case gate; else str
    lower: bool
    line: re.Pattern[bytes] | None
    plugins: tuple[int, ...]  # indexes into _PLUGINS

    def matches(self, line: str, lowered: bytes) -> bool:
        """Whether the gate matches ``line`` (``lowered`` is :func:`_ascii_lower` of it)."""
        if self.regex.search(lowered if self.lower else line) is None:
            return False
        return self.line is None or self.line.search(lowered) is not None


@dataclass(frozen=True)
class _Pass:
    """One search over the text, and the gates to check on each line where it hits."""

    anchor: str
    rests: str  # the gates' rests as alternatives
    lower: bool
    gates: tuple[_CompiledGate, ...]
    search: re.Pattern[Any] = field(init=False)  # bytes for a lower-case pass, else str

    def __post_init__(self) -> None:
        pattern = f"{re.escape(self.anchor)}(?:{self.rests})"
        object.__setattr__(self, "search", re.compile(pattern.encode() if self.lower else pattern))


@dataclass(frozen=True)
class _Prefilter:
    """The gates of all plugins: which plugin to run on which line of a text."""

    passes: tuple[_Pass, ...]
    quick: re.Pattern[str]  # all passes in one regex, for short ASCII texts: one call, no lowering

    def jobs(self, text: str) -> dict[tuple[int, int], str]:
        """{(line offset, plugin index): line} for each line where a gate of the plugin matches.

        Gates never span a newline, so after a hit the search goes on from the next line.
        """
        if len(text) <= _SHORT_TEXT and text.isascii() and not self.quick.search(text):
            return {}  # (for ASCII text, ignoring case is the same as lowering it)
        low = _ascii_lower(text)
        jobs: dict[tuple[int, int], str] = {}
        for one in self.passes:
            search, haystack = one.search, low if one.lower else text
            match = search.search(haystack)
            while match is not None:
                start = text.rfind("\n", 0, match.start()) + 1
                end = text.find("\n", match.end())
                end = len(text) if end == -1 else end
                line, lowered = text[start:end], low[start:end]
                for gate in one.gates:
                    if gate.matches(line, lowered):
                        jobs.update(((start, index), line) for index in gate.plugins)
                match = search.search(haystack, end + 1)
        return jobs


class Scanner:
    """Finds secrets (via detect-secrets plugins) and e-mail addresses in text.

    ``allowed_email_domains``: addresses at these domains or their subdomains
    are not findings (nor basic-auth URLs to them); the reserved top-level
    names of :data:`RESERVED_TLDS` are always allowed. Building one loads the
    plugins and compiles the gates; reuse it for every text.
    """

    def __init__(self, allowed_email_domains: tuple[str, ...] = DEFAULT_ALLOWED_DOMAINS) -> None:
        self._allowed = tuple(d.strip().lstrip("@.").rstrip(".").lower() for d in allowed_email_domains)
        self._plugins = _load_plugins()
        self._filters = _load_filters()
        self._prefilter = _compile_prefilter()

    @property
    def secret_types(self) -> tuple[str, ...]:
        """The detect-secrets secret types this scanner reports, one per plugin."""
        return tuple(plugin.secret_type for plugin in self._plugins)

    def scan(self, text: str) -> list[Finding]:
        """All findings in ``text``: one per distinct type and value, in order of appearance."""
        seen: dict[tuple[str, str, str], Finding] = {}
        for span in self._spans(text):
            key = (span.type, text[span.start : span.end], span.kind)
            seen.setdefault(key, Finding(span.kind, span.type, span.redacted))
        return list(seen.values())

    def redact(self, text: str) -> str:
        """``text`` with every finding's value replaced by ``[REDACTED <type>]``.

        The result never gives a finding: redaction repeats while a marker makes a
        new one (``[REDACTED GitHub Token] = "..."`` reads as a keyword assignment)
        or uncovers one (detect-secrets reports only the last npm token of a line).
        """
        for _ in range(_REDACT_ROUNDS):
            spans = _merge(self._spans(text))
            if not spans:
                return text
            text = _replace(text, spans)
        return _WITHHELD if self._spans(text) else text

    def _spans(self, text: str) -> list[_Span]:
        """Secrets and e-mail addresses in ``text``, sorted by position."""
        jobs = self._prefilter.jobs(text)
        spans = [
            span
            for (start, index), line in sorted(jobs.items())
            for span in self._confirm(self._plugins[index], text, start, line)
        ] if jobs else []
        if "@" in text:
            spans += self._email_spans(text)
        if len(spans) > 1:
            spans.sort(key=_position)
        return spans

    # -- secrets ---------------------------------------------------------------

    def _confirm(self, plugin: Any, text: str, line_start: int, line: str) -> Iterator[_Span]:
        secret_type = plugin.secret_type
        for value in set(plugin.analyze_string(line)):
            if not value or any(is_false_positive(value) for is_false_positive in self._filters):
                continue
            for index in _occurrences(line, value):
                start, end = _secret_bounds(text, line_start + index, len(value), secret_type)
                if secret_type == _BASIC_AUTH and self._local_host(_host_after(text, end)):
                    continue
                yield _Span(start, end, "secret", secret_type, _mask_secret(text[start:end], value, secret_type))

    # -- e-mail ----------------------------------------------------------------

    def _email_spans(self, text: str) -> Iterator[_Span]:
        at = text.find("@")
        while at != -1:
            span = self._email_at(text, at)
            if span is not None:
                yield span
            at = text.find("@", at + 1)

    def _email_at(self, text: str, at: int) -> _Span | None:
        if at == 0 or text[at - 1] not in _LOCAL_CHARS:
            return None
        domain_match = _DOMAIN.match(text, at + 1)
        local_match = _LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
        if domain_match is None or local_match is None:
            return None
        local = _trim_local(text, at - local_match.end(), at)
        start, domain = at - len(local), domain_match.group()
        if not local or local.lower() == "git" or self._allowed_host(domain):
            return None
        if _URL_USERINFO.search(text, max(0, start - 256), start):
            return None
        return _Span(start, domain_match.end(), "email", EMAIL_TYPE, f"{local[0]}***@{domain}")

    # -- hosts -----------------------------------------------------------------

    def _allowed_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host.rsplit(".", 1)[-1] in RESERVED_TLDS:
            return True
        return any(host == d or host.endswith("." + d) for d in self._allowed)

    def _local_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        loopback = host.startswith("127.") or host in {"0.0.0.0", "[::1]", "[::]"}
        return loopback or "." not in host or self._allowed_host(host)


def _load_plugins() -> tuple[Any, ...]:
    """The detect-secrets plugins of :data:`_PLUGINS`, built directly (no global settings)."""
    return tuple(
        getattr(_import(f"detect_secrets.plugins.{module_name}"), class_name)()
        for module_name, class_name, _ in _PLUGINS
    )


def _compile_prefilter() -> _Prefilter:
    """Group the gates into passes, one per (anchor character, lower-cased or not)."""
    owners: dict[_Gate, list[int]] = {}
    for index, (_, _, gates) in enumerate(_PLUGINS):
        for gate in gates:
            owners.setdefault(gate, []).append(index)
    by_pass: dict[tuple[str, bool], list[_Gate]] = {}
    for gate in owners:
        by_pass.setdefault((gate.anchor, gate.lower), []).append(gate)
    passes = tuple(_compile_pass(anchor, lower, gates, owners) for (anchor, lower), gates in by_pass.items())
    return _Prefilter(passes, re.compile("|".join(_quick_alternatives(passes))))


def _quick_alternatives(passes: tuple[_Pass, ...]) -> Iterator[str]:
    """Each pass as alternatives that start with a literal, case-insensitive ones in both cases."""
    for one in passes:
        if one.lower:
            yield from (f"{re.escape(a)}(?i:{one.rests})" for a in dict.fromkeys((one.anchor, one.anchor.upper())))
        else:
            yield one.search.pattern


def _compile_pass(anchor: str, lower: bool, gates: list[_Gate], owners: dict[_Gate, list[int]]) -> _Pass:
    compiled = tuple(
        _CompiledGate(
            re.compile(g.regex.encode() if g.lower else g.regex),
            g.lower,
            re.compile(g.line.encode()) if g.line else None,
            tuple(owners[g]),
        )
        for g in gates
    )
    return _Pass(anchor, "|".join(dict.fromkeys(g.rest for g in gates)), lower, compiled)


def _load_filters() -> tuple[Callable[[str], bool], ...]:
    heuristic = _import("detect_secrets.filters.heuristic")
    return tuple(getattr(heuristic, name) for name in _FILTERS)


def _import(name: str) -> Any:
    try:
        return import_module(name)
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} (could not import {name}: {exc})") from exc


def _ascii_lower(text: str) -> bytes:
    """``text`` lower-cased as ASCII bytes, one per character (others become ``?``).

    Positions stay those of ``text``, and it is several times faster than
    ``str.lower`` on text with non-ASCII characters. (Unlike the plugins'
    case-insensitive regexes it does not fold the Kelvin sign into ``k``.)
    """
    return text.encode("ascii", "replace").lower()


def _trim_local(text: str, start: int, at: int) -> str:
    """The local part ``text[start:at]`` without an escape letter (``\\n``) or leading punctuation."""
    if start > 0 and text[start - 1] == "\\":
        start += 1
    return text[start:at].lstrip("._%+-")


def _occurrences(line: str, value: str) -> Iterator[int]:
    index = line.find(value)
    while index != -1:
        yield index
        index = line.find(value, index + len(value))


def _secret_bounds(text: str, start: int, length: int, secret_type: str) -> tuple[int, int]:
    """The span to redact around a value detect-secrets reported at ``text[start:start+length]``."""
    if secret_type == _PRIVATE_KEY:
        return _private_key_bounds(text, start)
    end = start + length
    while start < end and text[start] in " \t\r\n\"'=:":  # Artifactory's leading delimiter
        start += 1
    while end > start and text[end - 1] in " \t\r\n\"'":
        end -= 1
    tail = _JWT_CHARS if secret_type == _JWT else _TOKEN_CHARS  # the JWT pattern ends lazily
    return start, tail.match(text, end).end()


def _private_key_bounds(text: str, marker: int) -> tuple[int, int]:
    """From ``-----BEGIN`` to the ``-----END ...-----`` marker; without one, to the end of the block."""
    start = marker
    while start > 0 and text[start - 1] == "-":
        start -= 1
    end_marker = _PEM_END.search(text, marker)
    if end_marker is not None:
        return start, end_marker.end()
    block_end = _KEY_BLOCK_END.search(text, marker)
    return start, block_end.start() if block_end is not None else len(text)


def _host_after(text: str, end: int) -> str:
    """The URL host after the ``@`` that follows a basic-auth password ending at ``end``."""
    at = text.find("@", end)
    return _HOST.match(text, at + 1).group() if at != -1 else ""


def _mask_secret(excerpt: str, value: str, secret_type: str) -> str:
    if secret_type == _PRIVATE_KEY:
        return f"{value.strip()} ****"
    return _mask(excerpt)


def _mask(value: str) -> str:
    """Keep at most 4 characters at each end (none for short values); mask the rest."""
    keep = 4 if len(value) >= 16 else 2 if len(value) >= 10 else 0
    hidden = min(len(value) - 2 * keep, 16)
    return f"{value[:keep]}{'*' * hidden}{value[len(value) - keep:] if keep else ''}"


def _position(span: _Span) -> tuple[int, int]:
    return span.start, -span.end


def _replace(text: str, spans: list[_Span]) -> str:
    """``text`` with each of the sorted, disjoint ``spans`` replaced by its marker."""
    parts: list[str] = []
    cursor = 0
    for span in spans:
        parts += [text[cursor : span.start], f"[REDACTED {span.type}]"]
        cursor = span.end
    parts.append(text[cursor:])
    return "".join(parts)


def _merge(spans: list[_Span]) -> list[_Span]:
    """Sorted spans with overlaps folded into the earlier span."""
    merged: list[_Span] = []
    for span in spans:
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = _Span(last.start, max(last.end, span.end), last.kind, last.type, last.redacted)
        else:
            merged.append(span)
    return merged


def masked(value: Any, scanner) -> Any:
    """``value`` with every string passed through ``scanner.redact`` (None scanner: unchanged)."""
    if scanner is None:
        return value
    if isinstance(value, str):
        return scanner.redact(value)
    if isinstance(value, list):
        return [masked(v, scanner) for v in value]
    if isinstance(value, dict):
        return {k: masked(v, scanner) for k, v in value.items()}
    return value
