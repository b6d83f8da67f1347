"""A deterministic, realistic Hyperquack v2 sample with ground truth.

:func:`write_sample` writes measurements in the raw format Censored Planet publishes (one
JSON trial per line, Go-style escaping), so they go through the same ingest path as real
data, and beside them a truth file the model never reads: per non-control probe, whether
the reply was an ordinary response, a blockpage the shipped fingerprints know, a
blockpage they do not know, a reset or a timeout.

Proportions follow what Quack scans show: most probes match their template; anomalies are
split between known and unknown blockpages, connection resets and timeouts, plus ordinary
pages that differ from the template (geo redirects, CDN challenges). A failed record holds
four test probes, as Hyperquack retries, so the rows come out at about 70 % ordinary, 8 %
known blockpages, 8 % unknown blockpages and 13 % resets and timeouts.

Unknown blockpages are what a model can discover: a few distinct pages (a national
regulator's notice, a filtering vendor's page, two ISP pages in Spanish and French), each
reused across a cluster of neighbouring countries with small per-request variations.

With ``real_size`` the ordinary pages that differ from the template are whole pages of
kilobytes, as real sites send; a ``.gz`` file name writes gzip as it goes, so a
scan-sized sample of a million measurements is written in minutes.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Callable

from quack.sample.blockpages import known_page, realistic_unknown, unknown_page
from quack.sample.pages import ordinary_mismatch, realistic_ordinary
from quack.sample.parts import cdn_headers, client_address
from quack.sample.real_size import real_page
from quack.sample.world import COUNTRIES, DOMAINS, Clock, Where

ORDINARY, KNOWN, UNKNOWN, RESET, TIMEOUT = "ordinary", "known_blockpage", "unknown_blockpage", "reset", "timeout"

_PORTS = {"echo": 7, "discard": 9, "http": 80, "https": 443}
_START = datetime(2021, 9, 15, 1, 0, 0, tzinfo=timezone(timedelta(hours=-4)))

_NATIONAL_KNOWN = {"IR": "ir_peyvandha", "TR": "tr_btk", "RU": "ru_rkn", "ID": "id_positif", "KR": "kr_warning",
                   "PK": "pk_surf_safely", "IN": "in_dot"}
_VENDOR_KNOWN = ("fortiguard", "squid", "sophos", "paloalto")
_UNKNOWN_BY_COUNTRY = {
    **dict.fromkeys(("KZ", "UZ", "TJ", "KG"), "u_regulator_notice"),
    **dict.fromkeys(("AE", "SA", "QA", "KW", "OM"), "u_vendor_gateway"),
    **dict.fromkeys(("VE", "CU", "NI"), "u_isp_es"),
    **dict.fromkeys(("DZ", "TN", "MA", "SN"), "u_isp_fr"),
}
_COUNTRY_NAMES = {code: name for code, name, _ in COUNTRIES}
# Countries with no page of their own, where vendor boxes show theirs.
_ELSEWHERE = [c for c in COUNTRIES if c[0] not in _NATIONAL_KNOWN and c[0] not in _UNKNOWN_BY_COUNTRY]

_CIPHERS = (49199, 49200, 49195, 49196, 52392, 4865, 4866, 47, 53, 156)

# Record scenarios and their shares of records.
_SCENARIOS = (("match", 0.85), ("retry", 0.03), ("mismatch", 0.02), ("known", 0.03), ("unknown", 0.03),
              ("reset", 0.02), ("timeout", 0.02))


def _weighted_country(countries, rnd: random.Random) -> str:
    """A country code drawn by the countries' weights."""
    return rnd.choices(countries, weights=[c[2] for c in countries])[0][0]


def _known_blockpage(elsewhere, rnd: random.Random) -> tuple[str, str]:
    """A known blockpage: half national pages in their country, half vendor pages in ``elsewhere``."""
    if rnd.random() < 0.5:
        code = rnd.choice(sorted(_NATIONAL_KNOWN))
        return code, _NATIONAL_KNOWN[code]
    return _weighted_country(elsewhere, rnd), rnd.choice(_VENDOR_KNOWN)


def _country_and_page(scenario: str, rnd: random.Random) -> tuple[str, str | None]:
    """Where a record was measured and, for a blockpage, which page came back.

    Half the known blockpages are national pages, half vendor pages anywhere else. Most
    unknown ones come from their country cluster; a fifth are the unknown vendor's page
    met elsewhere, so a cluster is more than a country code.
    """
    if scenario == "known":
        return _known_blockpage(_ELSEWHERE, rnd)
    if scenario == "unknown":
        if rnd.random() < 0.8:
            page = rnd.choice(sorted(set(_UNKNOWN_BY_COUNTRY.values())))
            return rnd.choice(sorted(c for c, p in _UNKNOWN_BY_COUNTRY.items() if p == page)), page
        return _weighted_country(_ELSEWHERE, rnd), "u_vendor_gateway"
    return _weighted_country(COUNTRIES, rnd), None


def _certificate(rnd: random.Random) -> str:
    return base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(200, 400)))).decode()



def _http_reply(status: str, headers: dict, body: str, https: bool, rnd: random.Random) -> dict:
    reply = {"status_line": status, "headers": headers, "body": body}
    if https:
        reply.update(TlsVersion=rnd.choice((771, 771, 771, 772, 769)), CipherSuite=rnd.choice(_CIPHERS),
                     Certificate=_certificate(rnd))
    return reply


def _payload(service: str, status: str, headers: dict, body: str, rnd: random.Random):
    """The reply as Quack stores it: an object for HTTP(S), the raw bytes for echo/discard."""
    if service in ("http", "https"):
        return _http_reply(status, headers, body, service == "https", rnd)
    head = "".join(f"{k}: {v}\r\n" for k, values in headers.items() for v in values)
    return f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"


def _mismatch_error(service: str) -> str:
    return {"echo": "echo response does not match echo request", "discard": "discard response is not empty",
            "http": "Status lines do not match;Bodies do not match;",
            "https": "Status lines do not match;Bodies do not match;Certificates do not match;"}[service]


def _network_error(kind: str, vp: str, service: str, rnd: random.Random) -> str:
    port = _PORTS[service]
    local = client_address(rnd)
    if kind == RESET:
        return f"read tcp {local}->{vp}:{port}: read: connection reset by peer"
    if rnd.random() < 0.3:
        return f"dial tcp 0.0.0.0:0->{vp}:{port}: i/o timeout"
    return f"read tcp {local}->{vp}:{port}: i/o timeout"


def _vantage_points(rnd: random.Random) -> dict[str, list[str]]:
    points = {}
    for code, _, weight in COUNTRIES:
        first = rnd.randint(2, 223)
        points[code] = [f"{first}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
                        for _ in range(1 + weight)]
    return points


# The truth of the probes of a record that gets a reply, by scenario.
_ANSWERED = {"known": KNOWN, "unknown": UNKNOWN, "mismatch": ORDINARY}


@dataclass(frozen=True)
class _Sampler:
    """How one kind of sample draws its records.

    ``reply(scenario, page, where, rnd, clock)`` is the reply to a known or unknown
    blockpage or an ordinary mismatching page; with ``per_probe`` each of a record's
    four probes gets its own, as a page with a request id or a clock would.
    """

    scenarios: tuple[tuple[str, float], ...]
    country_and_page: Callable[[str, random.Random], tuple[str, str | None]]
    reply: Callable[[str, str | None, Where, random.Random, Clock], dict | str]
    per_probe: bool


def _default_reply(scenario: str, page: str | None, where: Where, rnd: random.Random, clock: Clock) -> dict | str:
    if scenario == "mismatch":
        return _payload(where.service, *ordinary_mismatch(where.domain, where.code, rnd), rnd)
    body = (known_page if scenario == "known" else unknown_page)(page, where.domain, rnd)
    status = rnd.choice(("200 OK", "403 Forbidden")) if page != "u_vendor_gateway" else "403 Forbidden"
    return _payload(where.service, status, {"Content-Type": ["text/html; charset=utf-8"]}, body, rnd)


_DEFAULT = _Sampler(_SCENARIOS, _country_and_page, _default_reply, per_probe=False)


# ----------------------------------------------------------------------------- the realistic sample
#
# Real undetermined replies are hard because blockpages and ordinary pages are made of the
# same parts: the same frameworks and CDN headers, request ids and clocks that change on
# every request, the reader's language. The families below are the kinds Duncan & Chen
# (2023) found in real Quack data; their pages are in quack.sample.blockpages, the
# ordinary pages beside them in quack.sample.pages.

#: Unknown-blockpage families of the realistic sample and the countries they are met in
#: (a fifth of their records come from anywhere else).
REALISTIC_FAMILIES = {
    "u_suite_endpoint": ("DE", "IT", "RU", "BR", "JP", "PL"),       # a security suite's dangerous-site page
    "u_suite_parental": ("FR", "ES", "MX", "TR", "ID", "AR"),       # a security suite's parental control
    "u_router_parental": ("US", "GB", "CA", "AU", "NL", "SE"),      # a home router's parental controls
    "u_corp_blocked_cgi": ("AE", "SA", "QA", "KW", "EG", "ZA"),     # a corporate firewall's blocked.cgi
    "u_block_redirect": ("KZ", "UZ", "TJ", "KG", "VN", "TH"),       # a bare redirect to a block server
    "u_empty_close": ("CN", "VE", "CU", "DZ", "TN", "NI"),          # an empty reply, Connection: close
}

# More ordinary pages that differ from the template than in the default sample: real
# pages change between requests, so most undetermined replies are ordinary.
_REALISTIC_SCENARIOS = (("match", 0.78), ("retry", 0.03), ("mismatch", 0.10), ("known", 0.03), ("unknown", 0.03),
                        ("reset", 0.02), ("timeout", 0.01))


def _realistic_country_and_page(scenario: str, rnd: random.Random) -> tuple[str, str | None]:
    """As the default sample, but with the realistic unknown families and their countries."""
    if scenario == "known":
        return _known_blockpage([c for c in COUNTRIES if c[0] not in _NATIONAL_KNOWN], rnd)
    if scenario == "unknown":
        family = rnd.choice(sorted(REALISTIC_FAMILIES))
        if rnd.random() < 0.8:
            return rnd.choice(REALISTIC_FAMILIES[family]), family
        return _weighted_country(COUNTRIES, rnd), family
    return _weighted_country(COUNTRIES, rnd), None


def _realistic_payload(service: str, status: str, headers: dict, body: str, rnd: random.Random) -> dict | str:
    if service in ("echo", "discard"):
        # The raw reply gets its own Content-Length and Connection lines.
        headers = {k: v for k, v in headers.items() if k not in ("Content-Length", "Connection")}
    return _payload(service, status, headers, body, rnd)


def _realistic_reply(scenario: str, page: str | None, where: Where, rnd: random.Random, clock: Clock) -> dict | str:
    if scenario == "mismatch":
        return _realistic_payload(where.service, *realistic_ordinary(where, rnd, clock), rnd)
    if scenario == "known":
        headers = cdn_headers(rnd, clock) if rnd.random() < 0.3 else {"Content-Type": ["text/html; charset=utf-8"]}
        return _realistic_payload(where.service, rnd.choice(("200 OK", "403 Forbidden")), headers,
                                  known_page(page, where.domain, rnd), rnd)
    return _realistic_payload(where.service, *realistic_unknown(page, where, rnd, clock), rnd)


_REALISTIC = _Sampler(_REALISTIC_SCENARIOS, _realistic_country_and_page, _realistic_reply, per_probe=True)


def _with_real_pages(sampler: _Sampler, pages: random.Random) -> _Sampler:
    """``sampler`` with its ordinary mismatching pages at real size (:func:`quack.sample.real_size.real_page`).

    Redirects, empty replies and blockpages keep their size, as they do in real scans.
    The pages draw from ``pages`` alone, so the records are those of ``sampler`` with
    longer bodies.
    """

    def reply(scenario: str, page: str | None, where: Where, rnd: random.Random, clock: Clock) -> dict | str:
        answer = sampler.reply(scenario, page, where, rnd, clock)
        if scenario == "mismatch" and answer["body"] and not answer["status_line"].startswith("3"):
            answer["body"] = real_page(answer["body"], where.domain, where.code, pages)
        return answer

    return dataclasses.replace(sampler, reply=reply)


def _record(
    rnd: random.Random, clock: Clock, vps: dict, sampler: _Sampler
) -> tuple[dict, list[tuple[int, str, str | None]]]:
    """One trial and the truth of each test probe: (probe index, truth, page name)."""
    scenario = rnd.choices([s for s, _ in sampler.scenarios], weights=[w for _, w in sampler.scenarios])[0]
    code, page = sampler.country_and_page(scenario, rnd)
    name = _COUNTRY_NAMES[code]
    vp = rnd.choice(vps[code])
    domain = rnd.choice(DOMAINS)
    service = rnd.choice(("echo", "discard", "http", "https"))
    if scenario == "mismatch" and service in ("echo", "discard"):
        scenario = "match"
    control = "control-" + "".join(rnd.choice("0123456789abcdef") for _ in range(rnd.choice((14, 15, 16)))) + ".com"

    def control_probe() -> dict:
        start, end = clock.span(rnd.uniform(30, 400))
        return {"matches_template": True, "control_url": control, "start_time": start, "end_time": end}

    def test_probe(truth: str, reply=None) -> dict:
        if truth == ORDINARY and reply is None:
            start, end = clock.span(rnd.uniform(30, 900))
            return {"matches_template": True, "start_time": start, "end_time": end}
        if truth in (RESET, TIMEOUT):
            start, end = clock.span(rnd.uniform(20, 400) if truth == RESET else rnd.uniform(5000, 10000))
            probe = {"matches_template": False, "error": _network_error(truth, vp, service, rnd),
                     "start_time": start, "end_time": end}
            if service in ("echo", "discard"):
                probe["response"] = ""
            return probe
        start, end = clock.span(rnd.uniform(40, 1200))
        return {"matches_template": False, "response": reply, "error": _mismatch_error(service),
                "start_time": start, "end_time": end}

    probes = [control_probe()]
    truths: list[tuple[int, str, str | None]] = []
    anomaly = scenario not in ("match", "retry")
    if scenario == "match":
        truths.append((1, ORDINARY, None))
        probes.append(test_probe(ORDINARY))
    elif scenario == "retry":
        first = rnd.choice((RESET, TIMEOUT))
        probes += [test_probe(first), test_probe(ORDINARY)]
        truths += [(1, first, None), (2, ORDINARY, None)]
    else:
        truth = _ANSWERED.get(scenario, scenario)
        answered = scenario in _ANSWERED
        where = Where(domain, code, service, vp)
        reply = sampler.reply(scenario, page, where, rnd, clock) if answered and not sampler.per_probe else None
        for k in range(4):
            if answered and sampler.per_probe:
                reply = sampler.reply(scenario, page, where, rnd, clock)
            probes.append(test_probe(truth, reply))
            truths.append((k + 1, truth, page))
        probes.append(control_probe())
    record = {
        "vp": vp,
        "location": {"country_name": name, "country_code": code},
        "service": service,
        "test_url": domain,
        "response": probes,
        "anomaly": anomaly,
        "controls_failed": False,
        "stateful_block": False,
        "tag": _START.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return record, truths


#: When a sample's scan starts (the first day's, for a sample of several days).
START = _START


def vantage_points(rnd: random.Random) -> dict[str, list[str]]:
    """The vantage points of every country, drawn as the sample draws them: one more than the country's weight."""
    return _vantage_points(rnd)


def event_sampler(scenario: str, country: str, page: str,
                  body: Callable[[Where, random.Random], str] | None = None) -> _Sampler:
    """A sampler of ``scenario`` records (``"known"`` or ``"unknown"``) of one blockpage in one country.

    The records of a change in censorship: :func:`draw_record` with it gives blockpages of
    ``page`` from ``country`` alone. ``body`` writes the page for a probe; without it the
    page is the sample's own blockpage of that name.
    """

    def reply(scenario: str, page: str | None, where: Where, rnd: random.Random, clock: Clock) -> dict | str:
        if body is None:
            return _default_reply(scenario, page, where, rnd, clock)
        return _payload(where.service, "403 Forbidden", {"Content-Type": ["text/html; charset=utf-8"]},
                        body(where, rnd), rnd)

    return _Sampler(((scenario, 1.0),), lambda _scenario, _rnd: (country, page), reply, per_probe=False)


def draw_record(rnd: random.Random, clock: Clock, vps: dict[str, list[str]],
                sampler: _Sampler | None = None) -> tuple[dict, list[tuple[int, str, str | None]]]:
    """One trial of the default sample (or of ``sampler``) and the truth of each test probe.

    Returns
    -------
    (dict, list of tuple)
        The record as Quack writes it, and ``(probe index, truth, page name)`` per test probe.
    """
    return _record(rnd, clock, vps, sampler or _DEFAULT)


def record_line(record: dict) -> str:
    """A record as one line of a Quack file, escaped as Go's encoding/json writes it (no newline)."""
    return _go_json(record)


def _go_json(record: dict) -> str:
    """JSON as Go's encoding/json writes it: UTF-8, with <, > and & escaped."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


#: The endings of a sample file: JSON lines, plain or gzip-compressed.
SAMPLE_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


def _open_text(path: Path) -> IO[str]:
    """``path`` opened for writing text; for ``.gz``, gzip's fastest level (a million measurements are
    written in minutes) and no time stamp, so that the same sample gives the same bytes."""
    if path.suffix != ".gz":
        return open(path, "w", encoding="utf-8", newline="\n")
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=1, mtime=0), encoding="utf-8", newline="\n")


def write_sample(
    out_file: str | Path,
    n: int = 5000,
    seed: int = 0,
    realistic: bool = False,
    real_size: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, Path]:
    """Write ``n`` Hyperquack v2 measurements and their ground truth.

    Parameters
    ----------
    out_file : path
        The measurements, JSON lines; must end in ``.json`` or ``.jsonl``, or either with
        ``.gz`` for a gzip file written as it goes. The truth goes beside it, uncompressed,
        as ``<name>.truth.jsonl``.
    n : int
        Number of measurements (records); each gives one to four rows.
    seed : int
        The same seed gives byte-identical files.
    realistic : bool
        Write the harder sample (:data:`REALISTIC_FAMILIES`): unknown blockpages of the
        kinds found in real Quack data, sharing boilerplate with ordinary pages and
        varying per request. The default sample is unchanged by this option.
    real_size : bool
        Ordinary pages that differ from the template at the size real sites send them:
        whole pages of 2 to 60 kB (log-normal, about 11 kB typical) around the sample's
        own text, while blockpages, redirects and empty replies stay small. The records,
        rows and truth are those of the same sample without this option; only these
        bodies grow.
    progress : callable, optional
        Called with the number of measurements written, every 1,000 and at the end.

    Returns
    -------
    (Path, Path)
        The measurements file and the truth file. Each truth line is
        ``{"source", "line", "probe", "truth", "page"}``: ``source``/``line``/``probe``
        join with the rows of a data set built from the file, ``truth`` is one of
        ``ordinary``, ``known_blockpage``, ``unknown_blockpage``, ``reset``, ``timeout``,
        and ``page`` names the blockpage's family (or is null).

    Raises
    ------
    ValueError
        For a bad ``n`` or file name.
    """
    out = Path(out_file).expanduser()
    if not out.name.endswith(SAMPLE_SUFFIXES):
        raise ValueError(f"The sample file {out} must end in .json or .jsonl (or either with .gz) so that "
                         "`quack ingest` reads it.")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of measurements, got {n!r}.")
    rnd = random.Random(seed)
    vps = _vantage_points(rnd)
    clock = Clock(_START, rnd)
    sampler = _REALISTIC if realistic else _DEFAULT
    if real_size:
        sampler = _with_real_pages(sampler, random.Random(f"real-size pages {seed}"))
    truth_path = out.parent / (out.name.removesuffix(".gz").rsplit(".", 1)[0] + ".truth.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _open_text(out) as records, open(truth_path, "w", encoding="utf-8", newline="\n") as truth:
        for line in range(1, n + 1):
            record, truths = _record(rnd, clock, vps, sampler)
            records.write(_go_json(record) + "\n")
            for probe, kind, page in truths:
                truth.write(json.dumps({"source": out.name, "line": line, "probe": probe, "truth": kind,
                                        "page": page}) + "\n")
            if progress is not None and (line % 1000 == 0 or line == n):
                progress(line)
    return out, truth_path
