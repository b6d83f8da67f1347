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
"""

from __future__ import annotations

import base64
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

ORDINARY, KNOWN, UNKNOWN, RESET, TIMEOUT = "ordinary", "known_blockpage", "unknown_blockpage", "reset", "timeout"

_COLLECTOR = "141.212.123.235"
_PORTS = {"echo": 7, "discard": 9, "http": 80, "https": 443}
_START = datetime(2021, 9, 15, 1, 0, 0, tzinfo=timezone(timedelta(hours=-4)))

# (code, name, weight): weights roughly follow how many Quack vantage points a country has.
COUNTRIES = [
    ("US", "United States", 8), ("DE", "Germany", 4), ("GB", "United Kingdom", 3), ("FR", "France", 3),
    ("NL", "Netherlands", 2), ("CA", "Canada", 2), ("BR", "Brazil", 3), ("JP", "Japan", 2), ("AU", "Australia", 2),
    ("IT", "Italy", 2), ("ES", "Spain", 2), ("PL", "Poland", 2), ("SE", "Sweden", 1), ("ZA", "South Africa", 1),
    ("MX", "Mexico", 2), ("AR", "Argentina", 1), ("CN", "China", 4), ("RU", "Russia", 4), ("IR", "Iran", 3),
    ("TR", "Turkey", 3), ("ID", "Indonesia", 3), ("KR", "South Korea", 2), ("PK", "Pakistan", 2), ("IN", "India", 3),
    ("KZ", "Kazakhstan", 2), ("UZ", "Uzbekistan", 1), ("TJ", "Tajikistan", 1), ("KG", "Kyrgyzstan", 1),
    ("AE", "United Arab Emirates", 2), ("SA", "Saudi Arabia", 2), ("QA", "Qatar", 1), ("KW", "Kuwait", 1),
    ("OM", "Oman", 1), ("VE", "Venezuela", 2), ("CU", "Cuba", 1), ("NI", "Nicaragua", 1), ("DZ", "Algeria", 1),
    ("TN", "Tunisia", 1), ("MA", "Morocco", 1), ("SN", "Senegal", 1), ("TH", "Thailand", 2), ("VN", "Vietnam", 2),
    ("EG", "Egypt", 2), ("NG", "Nigeria", 1), ("KE", "Kenya", 1),
]

DOMAINS = [
    "www.bbc.com", "www.nytimes.com", "www.theguardian.com", "www.dw.com", "www.rferl.org", "www.voanews.com",
    "www.hrw.org", "www.amnesty.org", "www.torproject.org", "psiphon.ca", "www.getlantern.org", "signal.org",
    "telegram.org", "www.whatsapp.com", "www.facebook.com", "twitter.com", "www.instagram.com", "www.youtube.com",
    "www.wikipedia.org", "www.reddit.com", "www.tumblr.com", "vimeo.com", "www.dailymotion.com", "medium.com",
    "www.pornhub.com", "xhamster.com", "www.xvideos.com", "www.bet365.com", "www.pokerstars.com", "www.888.com",
    "www.grindr.com", "www.ilga.org", "www.hrc.org", "www.change.org", "www.avaaz.org", "www.greenpeace.org",
    "www.linkedin.com", "www.skype.com", "zoom.us", "www.dropbox.com", "www.box.com", "github.com",
    "www.protonmail.com", "www.nordvpn.com", "www.expressvpn.com", "www.hotspotshield.com", "archive.org",
    "www.bitcoin.org", "www.coinbase.com", "www.economist.com", "www.aljazeera.com", "www.alarabiya.net",
    "www.radiofarda.com", "www.bbc.co.uk", "www.france24.com", "www.ft.com", "www.rt.com", "www.sputniknews.com",
    "www.example.edu", "www.wikileaks.org",
]

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


def _known_page(name: str, domain: str, rnd: random.Random) -> str:
    if name == "ir_peyvandha":
        return ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1256">'
                f'<title>M{rnd.randint(1, 9)}-{rnd.randint(1, 9)}</title></head><body><iframe '
                'src="http://10.10.34.34?type=Invalid Site&policy=MainPolicy" style="width: 100%; height: 100%" '
                'scrolling="no" marginwidth="0" marginheight="0" frameborder="0" vspace="0" hspace="0"></iframe>'
                "</body></html>")
    if name == "tr_btk":
        return ("<html><head><meta charset=\"utf-8\"><title>Erişim Engellendi</title></head><body><div class=\"box\">"
                f"<p>Bu internet sitesi ({domain}) hakkında Bilgi Teknolojileri ve İletişim Kurumu tarafından "
                "5651 sayılı Kanun kapsamında verilen karar uyarınca koruma tedbiri uygulanmaktadır.</p>"
                f"<p>Karar No: {rnd.randint(100, 999)}.{rnd.randint(10, 99)}.2021</p></div></body></html>")
    if name == "ru_rkn":
        return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Доступ ограничен</title></head><body>"
                "<h1>Доступ к ресурсу ограничен</h1><p>Доступ к запрашиваемому ресурсу ограничен на основании "
                "Федерального закона от 27.07.2006 № 149-ФЗ «Об информации, информационных технологиях и о защите "
                f"информации».</p><p>Проверить ресурс: <a href=\"https://eais.rkn.gov.ru/\">eais.rkn.gov.ru</a></p>"
                f"<p>{domain}</p></body></html>")
    if name == "id_positif":
        return ("<html><head><title>Internet Positif</title></head><body><img src=\"http://internetpositif.id/logo.png\">"
                "<h2>Maaf, akses ke situs ini diblokir</h2><p>Situs yang Anda tuju mengandung konten negatif "
                f"sesuai Peraturan Menteri Kominfo.</p><p>{domain}</p></body></html>")
    if name == "kr_warning":
        return ('<html><head><title></title></head><body><iframe src="http://warning.or.kr/i1.html" width="100%" '
                'height="100%" frameborder="0"></iframe></body></html>')
    if name == "pk_surf_safely":
        return ("<html><head><title>Surf Safely</title></head><body><h1>Surf Safely!</h1><div>This website is not "
                "accessible.</div><div>The site you are trying to access contains content that is prohibited for "
                "viewership from within Pakistan.</div></body></html>")
    if name == "in_dot":
        return ("<html><head><title>Blocked</title></head><body><p>Your requested URL has been blocked as per the "
                "directions received from Department of Telecommunications, Government of India. Please contact "
                "administrator for more information.</p></body></html>")
    if name == "fortiguard":
        category = rnd.choice(["Proxy Avoidance", "Pornography", "Gambling", "Advocacy Organizations", "Dating"])
        return ("<!DOCTYPE html><html><head><title>Web Filter Violation</title></head><body><div class=\"main\">"
                "<h1>FortiGuard Intrusion Prevention - Access Blocked</h1><h3>Web Page Blocked</h3>"
                f"<p>You have tried to access a web page which is in violation of your internet usage policy.</p>"
                f"<p>URL: {domain}/</p><p>Category: {category}</p>"
                "<p>To have the rating of this web page re-evaluated please click here.</p></div></body></html>")
    if name == "squid":
        return ("<!DOCTYPE html><html><head><title>ERROR: The requested URL could not be retrieved</title></head>"
                f"<body id=\"ERR_ACCESS_DENIED\"><h1>ERROR</h1><h2>The requested URL could not be retrieved</h2>"
                f"<p>The following error was encountered while trying to retrieve the URL: http://{domain}/</p>"
                "<blockquote><p><b>Access Denied.</b></p></blockquote><p>Access control configuration prevents "
                "your request from being allowed at this time.</p><hr><div id=\"footer\"><p>Generated by "
                f"proxy{rnd.randint(1, 9)} (squid/3.5.27)</p></div></body></html>")
    if name == "sophos":
        return ("<html><head><title>Access Denied</title></head><body><h1>Website blocked</h1>"
                f"<p>Access to {domain} was blocked by Sophos Web Protection because it is in a restricted "
                "category.</p></body></html>")
    if name == "paloalto":
        return ("<html><head><title>Web Page Blocked</title></head><body><div id=\"content\"><h1>Web Page Blocked</h1>"
                "<p>Access to the web page you were trying to visit has been blocked in accordance with company "
                f"policy. Please contact your system administrator if you believe this is in error.</p>"
                f"<p><b>URL:</b> {domain}/ </p><p><b>Category:</b> {rnd.choice(['adult', 'gambling', 'proxy'])}</p>"
                "</div></body></html>")
    raise KeyError(name)


def _unknown_page(name: str, domain: str, rnd: random.Random) -> str:
    if name == "u_regulator_notice":
        return ("<!DOCTYPE html><html lang=\"ru\"><head><meta charset=\"utf-8\"><title>Ресурс недоступен</title>"
                "<style>body{font-family:Arial;background:#f4f4f4}.n{margin:80px auto;width:640px}</style></head>"
                "<body><div class=\"n\"><h2>Ресурс недоступен на территории страны</h2><p>This resource has been "
                "restricted by order of the National Communications Agency in accordance with the law on "
                f"information security.</p><p>Reference: NCA-{rnd.randint(10000, 99999)}</p><p>{domain}</p>"
                "</div></body></html>")
    if name == "u_vendor_gateway":
        txn = "".join(rnd.choice("0123456789abcdef") for _ in range(16))
        return ("<html><head><title>NetShield Gateway - Request Blocked</title><link rel=\"stylesheet\" "
                "href=\"/__ns/block.css\"></head><body><div class=\"ns-card\"><h1>Request blocked</h1>"
                f"<p>The request to <b>{domain}</b> was stopped by your organisation's NetShield Gateway.</p>"
                f"<p>Policy: {rnd.choice(['Restricted Content', 'Anonymizers', 'Adult', 'Social Networking'])}</p>"
                f"<p>Transaction: {txn}</p></div></body></html>")
    if name == "u_isp_es":
        return ("<html><head><meta charset=\"utf-8\"><title>Sitio no disponible</title></head><body>"
                "<center><h2>Sitio no disponible</h2><p>Este sitio web ha sido restringido por disposición de la "
                "autoridad competente en materia de telecomunicaciones.</p>"
                f"<p>Solicitud: {domain}</p><p>Código {rnd.randint(100, 999)}</p></center></body></html>")
    if name == "u_isp_fr":
        return ("<html><head><meta charset=\"utf-8\"><title>Accès restreint</title></head><body>"
                "<div style=\"text-align:center\"><h2>Accès restreint</h2><p>L'accès à ce site a été restreint "
                "conformément à la réglementation en vigueur.</p>"
                f"<p>Site demandé : {domain}</p></div></body></html>")
    raise KeyError(name)


def _ordinary_mismatch(domain: str, country: str, rnd: random.Random) -> tuple[str, dict, str]:
    """An ordinary page that still differs from the template: (status, headers, body)."""
    kind = rnd.choice(["redirect", "redirect", "consent", "challenge", "default"])
    if kind == "redirect":
        target = f"https://{domain}/{country.lower()}/"
        return ("302 Found", {"Location": [target], "Content-Type": ["text/html; charset=iso-8859-1"]},
                f"<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>302 Found</title>\n"
                f"</head><body>\n<h1>Found</h1>\n<p>The document has moved <a href=\"{target}\">here</a>.</p>\n"
                "</body></html>\n")
    if kind == "consent":
        return ("200 OK", {"Content-Type": ["text/html; charset=utf-8"], "Set-Cookie": ["consent=pending; Path=/"]},
                f"<html><head><title>{domain} - Privacy choices</title></head><body><h1>Before you continue</h1>"
                "<p>We use cookies and data to deliver and maintain our services.</p>"
                "<button>Accept all</button><button>Reject all</button></body></html>")
    if kind == "challenge":
        return ("503 Service Unavailable", {"Server": ["cloudflare"], "Content-Type": ["text/html; charset=UTF-8"]},
                "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body><div id=\"cf-content\">"
                "<h1>Checking your browser before accessing the site.</h1><p>This process is automatic.</p>"
                "</div></body></html>")
    return ("200 OK", {"Server": ["nginx/1.18.0"], "Content-Type": ["text/html"]},
            "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n"
            "<h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is successfully installed.</p>\n"
            "</body>\n</html>\n")


def _country_and_page(scenario: str, rnd: random.Random) -> tuple[str, str | None]:
    """Where a record was measured and, for a blockpage, which page came back.

    Half the known blockpages are national pages, half vendor pages anywhere else. Most
    unknown ones come from their country cluster; a fifth are the unknown vendor's page
    met elsewhere, so a cluster is more than a country code.
    """
    def anywhere(countries) -> str:
        return rnd.choices(countries, weights=[c[2] for c in countries])[0][0]

    if scenario == "known":
        if rnd.random() < 0.5:
            code = rnd.choice(sorted(_NATIONAL_KNOWN))
            return code, _NATIONAL_KNOWN[code]
        return anywhere(_ELSEWHERE), rnd.choice(_VENDOR_KNOWN)
    if scenario == "unknown":
        if rnd.random() < 0.8:
            page = rnd.choice(sorted(set(_UNKNOWN_BY_COUNTRY.values())))
            return rnd.choice(sorted(c for c, p in _UNKNOWN_BY_COUNTRY.items() if p == page)), page
        return anywhere(_ELSEWHERE), "u_vendor_gateway"
    return anywhere(COUNTRIES), None


def _certificate(rnd: random.Random) -> str:
    return base64.b64encode(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(200, 400)))).decode()


class _Clock:
    """Scan time moving forward, printed as Go prints it: up to nine fraction digits, zeros trimmed."""

    def __init__(self, start: datetime, rnd: random.Random) -> None:
        self.now = start
        self.rnd = rnd

    def span(self, ms: float) -> tuple[str, str]:
        begin = self.now
        self.now = begin + timedelta(milliseconds=ms + 5)
        return self._text(begin), self._text(begin + timedelta(milliseconds=ms))

    def _text(self, t: datetime) -> str:
        seconds, _, rest = t.isoformat(timespec="microseconds").partition(".")
        micro, offset = rest[:6], rest[6:]
        fraction = f"{micro}{self.rnd.randint(0, 999):03d}".rstrip("0")
        return f"{seconds}{'.' + fraction if fraction else ''}{offset}"


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
    local = f"{_COLLECTOR}:{rnd.randint(1024, 65535)}"
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


def _record(rnd: random.Random, clock: _Clock, vps: dict) -> tuple[dict, list[tuple[int, str, str | None]]]:
    """One trial and the truth of each test probe: (probe index, truth, page name)."""
    scenario = rnd.choices([s for s, _ in _SCENARIOS], weights=[w for _, w in _SCENARIOS])[0]
    code, page = _country_and_page(scenario, rnd)
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
        if scenario in ("known", "unknown"):
            truth = KNOWN if scenario == "known" else UNKNOWN
            body = (_known_page if scenario == "known" else _unknown_page)(page, domain, rnd)
            status = rnd.choice(("200 OK", "403 Forbidden")) if page != "u_vendor_gateway" else "403 Forbidden"
            reply = _payload(service, status, {"Content-Type": ["text/html; charset=utf-8"]}, body, rnd)
        elif scenario == "mismatch":
            truth = ORDINARY
            reply = _payload(service, *_ordinary_mismatch(domain, code, rnd), rnd)
        else:
            truth, reply = scenario, None
        for k in range(4):
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


def _go_json(record: dict) -> str:
    """JSON as Go's encoding/json writes it: UTF-8, with <, > and & escaped."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_sample(out_file: str | Path, n: int = 5000, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n`` Hyperquack v2 measurements and their ground truth.

    Parameters
    ----------
    out_file : path
        The measurements, JSON lines; must end in ``.json`` or ``.jsonl``. The truth goes
        beside it as ``<name>.truth.jsonl``.
    n : int
        Number of measurements (records); each gives one to four rows.
    seed : int
        The same seed gives byte-identical files.

    Returns
    -------
    (Path, Path)
        The measurements file and the truth file. Each truth line is
        ``{"source", "line", "probe", "truth", "page"}``: ``source``/``line``/``probe``
        join with the rows of a data set built from the file, ``truth`` is one of
        ``ordinary``, ``known_blockpage``, ``unknown_blockpage``, ``reset``, ``timeout``,
        and ``page`` names the blockpage template (or is null).

    Raises
    ------
    ValueError
        For a bad ``n`` or file name.
    """
    out = Path(out_file).expanduser()
    if out.suffix not in (".json", ".jsonl"):
        raise ValueError(f"The sample file {out} must end in .json or .jsonl so that `quack ingest` reads it.")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of measurements, got {n!r}.")
    rnd = random.Random(seed)
    vps = _vantage_points(rnd)
    clock = _Clock(_START, rnd)
    truth_path = out.with_suffix(".truth.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as records, \
            open(truth_path, "w", encoding="utf-8", newline="\n") as truth:
        for line in range(1, n + 1):
            record, truths = _record(rnd, clock, vps)
            records.write(_go_json(record) + "\n")
            for probe, kind, page in truths:
                truth.write(json.dumps({"source": out.name, "line": line, "probe": probe, "truth": kind,
                                        "page": page}) + "\n")
    return out, truth_path
