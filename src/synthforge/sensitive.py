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
allowed domain, or a ``.test``/``.example``/``.invalid``/``.localhost`` name)
are not findings: coding answers are full of placeholder connection strings
such as ``postgresql://user:secret@localhost:5432/app``.

Speed: calling every plugin on every line costs milliseconds per row. Each
plugin therefore has cheap gates, substrings or literal-led regexes that
every match of its patterns must contain (``AKIA...`` for AWS, ``eyJ`` for a
JWT, ``key``/``token``/``pass`` followed by an assigned 24+ character value
for the assignment-style IBM/Cloudant/SoftLayer patterns, ...). Clean text
costs only the gates, a few microseconds per KB; a plugin runs only on the
lines where one of its gates hit, which is how detect-secrets scans too.

E-mail addresses are ``local@domain.tld`` (a dotted domain with an alphabetic
top-level label). They are not findings when the domain is an allowed domain
or a subdomain of one, when the top-level label is one reserved by RFC 2606 /
RFC 6761 (``test``, ``example``, ``invalid``, ``localhost``), when the user is
``git`` (the SSH user of git hosting, as in ``git@github.com:org/repo.git``),
or when the ``user@`` is the user part of a URL (``ssh://deploy@host.com``).
Plugins are built directly, so no detect-secrets global settings are read or
changed, and nothing is verified over the network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

EMAIL_TYPE = "E-mail address"
DEFAULT_ALLOWED_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
RESERVED_TLDS = frozenset({"test", "example", "invalid", "localhost"})

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

    ``anchor + rest`` is a regex found in every line where the plugin's
    patterns match. Gates that share an anchor character are searched for in
    one pass over the text (a regex with a literal first character is the
    fastest search ``re`` has). ``words`` (any one) and ``line``, when set,
    are stricter conditions on the same line, lower-cased.
    """

    anchor: str  # a literal first character; "" for a gate searched in a pass of its own
    rest: str
    words: tuple[str, ...] = ()
    line: str = ""

    @property
    def regex(self) -> str:
        return f"{re.escape(self.anchor)}(?:{self.rest})"


# A value of 24+ characters right after an assignment character or a quote.
_VALUE = r"[ =:>\"'][A-Za-z0-9_+/-]{24}"
_KEYWORDS = ("key", "pw", "pass", "token")
# build_assignment_regex as used by the Cloudant/IBM/SoftLayer plugins: a keyword,
# then an assignment, then the value (24 to 64 characters, by plugin).
_ASSIGNMENT = _Gate(
    "", _VALUE, _KEYWORDS, r"(?:key|pwd?|pass(?:word)?|token)['\"]?\]?[ =:>]+['\"]?[a-z0-9_-]{24}"
)
_USERINFO = r"//[^\s:/@]+:[^\s:/@]+@"  # after the ":" of scheme://user:password@

# (module in detect_secrets.plugins, class, gates): every match of the plugin's
# denylist patterns lies on a line where one of its gates matches.
_PLUGINS: tuple[tuple[str, str, tuple[_Gate, ...]], ...] = (
    ("artifactory", "ArtifactoryDetector", (_Gate("A", r"KC[a-zA-Z0-9]{10}|P[\dA-F][a-zA-Z0-9]{8}"),)),
    ("aws", "AWSKeyDetector", (
        _Gate("A", r"(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)[0-9A-Z]{16}"),
        _Gate("", _VALUE, ("aws",), r"aws.{0,20}?(?:key|pw|pass|token).{0,20}?['\"][0-9a-z/+]{40}['\"]"),
    )),
    ("azure_storage_key", "AzureStorageKeyDetector", (_Gate("A", r"ccountKey="),)),
    ("basic_auth", "BasicAuthDetector", (_Gate(":", _USERINFO),)),
    ("cloudant", "CloudantDetector", (_Gate(":", _USERINFO, ("cloudant",)), _ASSIGNMENT)),
    ("discord", "DiscordBotTokenDetector", (_Gate(".", r"[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}"),)),
    ("github_token", "GitHubTokenDetector", (_Gate("_", r"(?<=gh[pousr]_)[A-Za-z0-9_]{36}"),)),
    ("gitlab_token", "GitLabTokenDetector", (
        _Gate("-", r"(?<=gl(?:dt|ft|rt)-)|(?<=gl(?:pat|cbt|imt|ptt|oas)-)|(?<=glsoat-)|(?<=glagent-)"),
        _Gate("G", r"R1348941"),
    )),
    ("ibm_cloud_iam", "IbmCloudIamDetector", (_ASSIGNMENT,)),
    ("ibm_cos_hmac", "IbmCosHmacDetector", (_ASSIGNMENT,)),
    ("jwt", "JwtTokenDetector", (_Gate("J", r"(?<=eyJ)"),)),
    ("mailchimp", "MailchimpDetector", (_Gate("-", r"us[0-9]"),)),
    ("npm", "NpmDetector", (_Gate(":", r"_authToken="),)),
    ("openai", "OpenAIDetector", (_Gate("J", r"(?<=T3BlbkFJ)"),)),
    ("private_key", "PrivateKeyDetector", (
        _Gate("K", r"EY(?<=PRIVATE KEY)"),
        _Gate("K", r"ey-File-2(?<=PuTTY-User-Key-File-2)"),
    )),
    ("pypi_token", "PypiTokenDetector", (_Gate("A", r"gE(?<=pypi-AgE)"),)),
    ("sendgrid", "SendGridDetector", (_Gate(".", r"(?<=SG\.)[a-zA-Z0-9_-]{22}\."),)),
    ("slack", "SlackDetector", (
        _Gate("-", r"(?<=(?i:xox[abposr])-)"),
        _Gate(":", r"//(?i:hooks\.slack\.com)"),
    )),
    ("softlayer", "SoftlayerDetector", (_Gate(":", r"//(?i:api)", ("softlayer",)), _ASSIGNMENT)),
    ("square_oauth", "SquareOAuthDetector", (_Gate("-", r"(?<=sq0csp-)"),)),
    ("stripe", "StripeDetector", (_Gate("_", r"live_(?<=k_live_)"),)),
    ("telegram_token", "TelegramBotTokenDetector", (_Gate(":", r"(?<=\d{8}:)[0-9A-Za-z_-]{35}"),)),
    ("twilio", "TwilioKeyDetector", (_Gate("A", r"C[a-z0-9]{32}"), _Gate("K", r"(?<=SK)[a-z0-9]{32}"))),
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
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
_HOST = re.compile(r"\[[0-9A-Fa-f:.]*\]|[^\s/:?#@\"'<>]*")
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
    regex: re.Pattern[str]
    words: tuple[str, ...]
    line: re.Pattern[str] | None
    detectors: tuple[int, ...]  # indexes into Scanner._plugins

    def matches(self, line: str, lower: Callable[[], str]) -> bool:
        if self.regex.search(line) is None:
            return False
        if self.words and not any(word in lower() for word in self.words):
            return False
        return self.line is None or self.line.search(lower()) is not None


# One search over the text, and the gates to check on each line where it hits.
_Pass = tuple[re.Pattern[str], tuple[_CompiledGate, ...]]


class Scanner:
    """Finds secrets (via detect-secrets plugins) and e-mail addresses in text.

    ``allowed_email_domains``: addresses at these domains or their subdomains
    are not findings (nor basic-auth URLs to them); RFC 2606 reserved
    top-level names (``.test``, ``.example``, ``.invalid``, ``.localhost``)
    are always allowed.
    """

    def __init__(self, allowed_email_domains: tuple[str, ...] = DEFAULT_ALLOWED_DOMAINS) -> None:
        self._allowed = tuple(d.strip().lstrip("@.").rstrip(".").lower() for d in allowed_email_domains)
        self._plugins = _load_plugins()
        self._filters = _load_filters()
        self._passes = _compile_passes()

    def scan(self, text: str) -> list[Finding]:
        """All findings in ``text``: one per distinct type and value, in order of appearance."""
        seen: dict[tuple[str, str, str], Finding] = {}
        for span in self._spans(text):
            key = (span.type, text[span.start : span.end], span.kind)
            seen.setdefault(key, Finding(span.kind, span.type, span.redacted))
        return list(seen.values())

    def redact(self, text: str) -> str:
        """``text`` with every finding's value replaced by ``[REDACTED <type>]``."""
        parts: list[str] = []
        cursor = 0
        for span in _merge(self._spans(text)):
            parts += [text[cursor : span.start], f"[REDACTED {span.type}]"]
            cursor = span.end
        parts.append(text[cursor:])
        return "".join(parts)

    def _spans(self, text: str) -> list[_Span]:
        spans = list(self._secret_spans(text))
        if "@" in text:
            spans += self._email_spans(text)
        spans.sort(key=lambda s: (s.start, -s.end))
        return spans

    # -- secrets ---------------------------------------------------------------

    def _secret_spans(self, text: str) -> Iterator[_Span]:
        jobs = _gated_lines(self._passes, text)
        for (line_start, index), line in sorted(jobs.items()):
            yield from self._confirm(self._plugins[index], text, line_start, line)

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
        domain_match = _DOMAIN.match(text, at + 1)
        local_match = _LOCAL_REVERSED.match(text[max(0, at - 64) : at][::-1])
        if domain_match is None or local_match is None:
            return None
        local = text[at - local_match.end() : at].lstrip(".")
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


def _compile_passes() -> tuple[_Pass, ...]:
    """Group the gates into passes: one per anchor character, one per unanchored gate."""
    owners: dict[_Gate, list[int]] = {}
    for index, (_, _, gates) in enumerate(_PLUGINS):
        for gate in gates:
            owners.setdefault(gate, []).append(index)
    by_pass: dict[str, list[_Gate]] = {}
    for gate in owners:
        key = gate.anchor if gate.anchor else gate.regex
        by_pass.setdefault(key, []).append(gate)
    passes = []
    for gates in by_pass.values():
        anchor = gates[0].anchor
        rests = "|".join(dict.fromkeys(g.rest for g in gates))
        search = f"{re.escape(anchor)}(?:{rests})" if anchor else gates[0].regex
        compiled = tuple(
            _CompiledGate(re.compile(g.regex), g.words, re.compile(g.line) if g.line else None, tuple(owners[g]))
            for g in gates
        )
        passes.append((re.compile(search), compiled))
    return tuple(passes)


def _load_filters() -> tuple[Callable[[str], bool], ...]:
    heuristic = _import("detect_secrets.filters.heuristic")
    return tuple(getattr(heuristic, name) for name in _FILTERS)


def _import(name: str) -> Any:
    try:
        return import_module(name)
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} (could not import {name}: {exc})") from exc


def _gated_lines(passes: tuple[_Pass, ...], text: str) -> dict[tuple[int, int], str]:
    """{(line offset, plugin index): line} for each line where a gate of the plugin matches.

    Gates never span a newline, so after a hit the search goes on from the next line.
    """
    jobs: dict[tuple[int, int], str] = {}
    for search, gates in passes:
        match = search.search(text)
        while match is not None:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            end = len(text) if end == -1 else end
            line = text[start:end]
            lower = functools.cache(line.lower)
            for gate in gates:
                if gate.matches(line, lower):
                    jobs.update(((start, index), line) for index in gate.detectors)
            match = search.search(text, end + 1)
    return jobs


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
    tail = _JWT_CHARS if secret_type == _JWT else _TOKEN_CHARS  # its pattern ends lazily
    end = tail.match(text, end).end()
    while start > 0 and (text[start - 1].isascii() and (text[start - 1].isalnum() or text[start - 1] in "_-")):
        start -= 1
    return start, end


def _private_key_bounds(text: str, marker: int) -> tuple[int, int]:
    """From the ``-----BEGIN`` to the ``-----END ...-----`` line, else to a blank line or the end."""
    start = marker
    while start > 0 and text[start - 1] == "-":
        start -= 1
    end_marker = _PEM_END.search(text, marker)
    if end_marker is not None:
        return start, end_marker.end()
    blank = _BLANK_LINE.search(text, marker)
    return start, blank.start() if blank is not None else len(text)


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
