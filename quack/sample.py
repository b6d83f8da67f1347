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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, NamedTuple

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


class _Where(NamedTuple):
    """Where a probe went: the test domain, the country, the service and the vantage point."""

    domain: str
    code: str
    service: str
    vp: str


# The truth of the probes of a record that gets a reply, by scenario.
_ANSWERED = {"known": KNOWN, "unknown": UNKNOWN, "mismatch": ORDINARY}


@dataclass(frozen=True)
class _World:
    """How one kind of sample draws its records.

    ``reply(scenario, page, where, rnd, clock)`` is the reply to a known or unknown
    blockpage or an ordinary mismatching page; with ``per_probe`` each of a record's
    four probes gets its own, as a page with a request id or a clock would.
    """

    scenarios: tuple[tuple[str, float], ...]
    country_and_page: Callable[[str, random.Random], tuple[str, str | None]]
    reply: Callable[[str, str | None, _Where, random.Random, _Clock], dict | str]
    per_probe: bool


def _default_reply(scenario: str, page: str | None, where: _Where, rnd: random.Random, clock: _Clock) -> dict | str:
    if scenario == "mismatch":
        return _payload(where.service, *_ordinary_mismatch(where.domain, where.code, rnd), rnd)
    body = (_known_page if scenario == "known" else _unknown_page)(page, where.domain, rnd)
    status = rnd.choice(("200 OK", "403 Forbidden")) if page != "u_vendor_gateway" else "403 Forbidden"
    return _payload(where.service, status, {"Content-Type": ["text/html; charset=utf-8"]}, body, rnd)


_DEFAULT = _World(_SCENARIOS, _country_and_page, _default_reply, per_probe=False)


# ----------------------------------------------------------------------------- the realistic sample
#
# Real undetermined replies are hard because blockpages and ordinary pages are made of the
# same parts: the same frameworks and CDN headers, request ids and clocks that change on
# every request, the reader's language. The families below are the kinds Duncan & Chen
# (2023) found in real Quack data; the product names are invented.

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

_LANGUAGE = {
    **dict.fromkeys(("DE",), "de"), **dict.fromkeys(("FR", "SN", "DZ", "TN", "MA"), "fr"),
    **dict.fromkeys(("ES", "MX", "AR", "VE", "CU", "NI"), "es"), "BR": "pt", "TR": "tr", "IT": "it", "JP": "ja",
    "CN": "zh", "ID": "id", **dict.fromkeys(("RU", "KZ", "UZ", "TJ", "KG"), "ru"),
    **dict.fromkeys(("AE", "SA", "QA", "KW", "OM", "EG"), "ar"),
}

# The sentences of the realistic pages, by language (English where a country has none here).
_PHRASES = {
    "danger_title": {
        "en": "Dangerous website blocked", "de": "Gefährliche Webseite blockiert", "fr": "Site web dangereux bloqué",
        "es": "Sitio web peligroso bloqueado", "pt": "Site perigoso bloqueado", "ru": "Опасный веб-сайт заблокирован",
        "tr": "Tehlikeli web sitesi engellendi", "ar": "تم حظر موقع ويب خطير", "it": "Sito web pericoloso bloccato",
        "ja": "危険なウェブサイトをブロックしました", "zh": "已阻止危险网站", "id": "Situs web berbahaya diblokir",
    },
    "danger_text": {
        "en": "The page you asked for may harm your computer, so it was not opened.",
        "de": "Die angeforderte Seite kann Ihrem Computer schaden und wurde deshalb nicht geöffnet.",
        "fr": "La page demandée peut nuire à votre ordinateur, elle n'a donc pas été ouverte.",
        "es": "La página solicitada puede dañar su equipo, por eso no se ha abierto.",
        "pt": "A página solicitada pode prejudicar o seu computador e por isso não foi aberta.",
        "ru": "Запрошенная страница может навредить вашему компьютеру, поэтому она не была открыта.",
        "tr": "İstediğiniz sayfa bilgisayarınıza zarar verebilir, bu nedenle açılmadı.",
        "ar": "قد تضر الصفحة المطلوبة بجهاز الكمبيوتر الخاص بك، لذلك لم يتم فتحها.",
        "it": "La pagina richiesta potrebbe danneggiare il computer, quindi non è stata aperta.",
        "ja": "要求されたページはコンピューターに害を与える可能性があるため、開かれませんでした。",
        "zh": "您请求的页面可能会危害您的计算机，因此未被打开。",
        "id": "Halaman yang Anda minta dapat membahayakan komputer Anda, jadi tidak dibuka.",
    },
    "parental_title": {
        "en": "Parental control", "de": "Kindersicherung", "fr": "Contrôle parental", "es": "Control parental",
        "pt": "Controle dos pais", "ru": "Родительский контроль", "tr": "Ebeveyn denetimi", "ar": "الرقابة الأبوية",
        "it": "Controllo genitori", "ja": "ペアレンタルコントロール", "zh": "家长控制", "id": "Kontrol orang tua",
    },
    "parental_text": {
        "en": "This page is in a category your parental control settings do not allow on this device.",
        "de": "Diese Seite gehört zu einer Kategorie, die die Kindersicherung auf diesem Gerät nicht zulässt.",
        "fr": "Cette page appartient à une catégorie que le contrôle parental n'autorise pas sur cet appareil.",
        "es": "Esta página pertenece a una categoría que el control parental no permite en este dispositivo.",
        "pt": "Esta página pertence a uma categoria que o controle dos pais não permite neste dispositivo.",
        "ru": "Эта страница относится к категории, которую родительский контроль не разрешает на этом устройстве.",
        "tr": "Bu sayfa, ebeveyn denetimi ayarlarınızın bu cihazda izin vermediği bir kategoride.",
        "ar": "تنتمي هذه الصفحة إلى فئة لا تسمح بها إعدادات الرقابة الأبوية على هذا الجهاز.",
        "it": "Questa pagina appartiene a una categoria che il controllo genitori non consente su questo dispositivo.",
        "ja": "このページは、このデバイスのペアレンタルコントロール設定で許可されていないカテゴリに属しています。",
        "zh": "此页面属于此设备的家长控制设置不允许的类别。",
        "id": "Halaman ini termasuk kategori yang tidak diizinkan oleh kontrol orang tua di perangkat ini.",
    },
    "router_text": {
        "en": "The owner of this network has turned on parental controls for this device. Ask them for access.",
        "ar": "قام مالك هذه الشبكة بتشغيل الرقابة الأبوية لهذا الجهاز. اطلب منه الوصول.",
    },
    "corp_title": {"en": "Access to this site is not allowed", "ar": "غير مسموح بالوصول إلى هذا الموقع"},
    "corp_text": {
        "en": "Your request was stopped by the acceptable use policy of your organisation.",
        "ar": "تم إيقاف طلبك بموجب سياسة الاستخدام المقبول في مؤسستك.",
    },
    "consent_title": {
        "en": "Before you continue", "de": "Bevor Sie fortfahren", "fr": "Avant de continuer", "es": "Antes de continuar",
        "pt": "Antes de continuar", "ru": "Прежде чем продолжить", "tr": "Devam etmeden önce", "ar": "قبل المتابعة",
        "it": "Prima di continuare", "ja": "続行する前に", "zh": "继续之前", "id": "Sebelum Anda melanjutkan",
    },
    "consent_text": {
        "en": "We use cookies and data to deliver and improve our services.",
        "de": "Wir verwenden Cookies und Daten, um unsere Dienste bereitzustellen und zu verbessern.",
        "fr": "Nous utilisons des cookies et des données pour fournir et améliorer nos services.",
        "es": "Usamos cookies y datos para ofrecer y mejorar nuestros servicios.",
        "pt": "Usamos cookies e dados para oferecer e melhorar nossos serviços.",
        "ru": "Мы используем файлы cookie и данные для работы и улучшения наших сервисов.",
        "tr": "Hizmetlerimizi sunmak ve geliştirmek için çerezler ve veriler kullanıyoruz.",
        "ar": "نستخدم ملفات تعريف الارتباط والبيانات لتقديم خدماتنا وتحسينها.",
        "it": "Utilizziamo cookie e dati per fornire e migliorare i nostri servizi.",
        "ja": "当社はサービスの提供と改善のために Cookie とデータを使用します。",
        "zh": "我们使用 Cookie 和数据来提供和改进我们的服务。",
        "id": "Kami menggunakan cookie dan data untuk menyediakan dan meningkatkan layanan kami.",
    },
    "region_text": {
        "en": "This service is not available in your region.", "de": "Dieser Dienst ist in Ihrer Region nicht verfügbar.",
        "fr": "Ce service n'est pas disponible dans votre région.", "es": "Este servicio no está disponible en su región.",
        "pt": "Este serviço não está disponível na sua região.", "ru": "Этот сервис недоступен в вашем регионе.",
        "tr": "Bu hizmet bölgenizde kullanılamıyor.", "ar": "هذه الخدمة غير متوفرة في منطقتك.",
        "it": "Questo servizio non è disponibile nella tua regione.", "ja": "このサービスはお住まいの地域ではご利用いただけません。",
        "zh": "此服务在您所在的地区不可用。", "id": "Layanan ini tidak tersedia di wilayah Anda.",
    },
    "maintenance": {
        "en": "We'll be back soon: scheduled maintenance.", "de": "Wir sind bald zurück: geplante Wartungsarbeiten.",
        "fr": "Nous revenons bientôt : maintenance programmée.", "es": "Volvemos pronto: mantenimiento programado.",
        "pt": "Voltamos em breve: manutenção programada.", "ru": "Скоро вернёмся: плановое техническое обслуживание.",
        "tr": "Yakında döneceğiz: planlı bakım.", "ar": "سنعود قريبًا: صيانة مجدولة.",
        "it": "Torniamo presto: manutenzione programmata.", "ja": "まもなく再開します：定期メンテナンス中です。",
        "zh": "我们很快回来：计划维护中。", "id": "Kami segera kembali: pemeliharaan terjadwal.",
    },
    "news": {
        "en": "Latest news", "de": "Aktuelle Nachrichten", "fr": "Dernières actualités", "es": "Últimas noticias",
        "pt": "Últimas notícias", "ru": "Последние новости", "tr": "Son haberler", "ar": "آخر الأخبار",
        "it": "Ultime notizie", "ja": "最新ニュース", "zh": "最新消息", "id": "Berita terbaru",
    },
}
_CATEGORIES = ("adult", "gambling", "social-networks", "proxy-anonymizer", "dating", "games", "weapons")


def _say(key: str, code: str) -> str:
    phrases = _PHRASES[key]
    return phrases.get(_LANGUAGE.get(code, "en"), phrases["en"])


def _hex(rnd: random.Random, length: int) -> str:
    return "".join(rnd.choice("0123456789abcdef") for _ in range(length))


def _uuid(rnd: random.Random) -> str:
    text = _hex(rnd, 32)
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{text[16:20]}-{text[20:]}"


def _http_date(clock: _Clock) -> str:
    return clock.now.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _client(rnd: random.Random) -> str:
    """The client's address as a box in the path saw it: the collector and its source port."""
    return f"{_COLLECTOR}:{rnd.randint(1024, 65535)}"


def _head(code: str, title: str, rnd: random.Random) -> str:
    """The boilerplate a page opens with; ordinary pages and blockpages share it."""
    bootstrap = rnd.choice(("4.6.2", "5.1.3", "5.2.3", "5.3.2"))
    parts = [f'<!DOCTYPE html><html lang="{_LANGUAGE.get(code, "en")}"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{title}</title>",
             f'<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@{bootstrap}'
             '/dist/css/bootstrap.min.css">']
    if rnd.random() < 0.6:
        parts.append(f'<script src="https://code.jquery.com/jquery-{rnd.choice(("3.5.1", "3.6.0", "3.7.1"))}.min.js">'
                     "</script>")
    if rnd.random() < 0.3:
        parts.append('<link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>')
    return "".join(parts) + "</head>"


def _cdn_headers(rnd: random.Random, clock: _Clock) -> dict[str, list[str]]:
    """Headers of a page served through a CDN, with the ids that change on each request."""
    kind = rnd.choice(("cloudflare", "akamai", "cloudfront", "fastly", "origin"))
    headers = {"Date": [_http_date(clock)], "Content-Type": ["text/html; charset=utf-8"]}
    if kind == "cloudflare":
        ray = f"{_hex(rnd, 16)}-{rnd.choice(('FRA', 'AMS', 'SIN', 'IAD'))}"
        headers.update({"Server": ["cloudflare"], "CF-RAY": [ray],
                        "CF-Cache-Status": [rnd.choice(("DYNAMIC", "HIT", "MISS"))]})
    elif kind == "akamai":
        headers.update({"Server": ["AkamaiGHost"], "X-Akamai-Request-ID": [_hex(rnd, 8)]})
    elif kind == "cloudfront":
        headers.update({"Via": [f"1.1 {_hex(rnd, 32)}.cloudfront.net (CloudFront)"],
                        "X-Cache": [rnd.choice(("Miss from cloudfront", "Hit from cloudfront"))],
                        "X-Amz-Cf-Id": [base64.b64encode(rnd.randbytes(42)).decode()]})
    elif kind == "fastly":
        headers.update({"Via": ["1.1 varnish"], "X-Served-By": [f"cache-{rnd.choice(('fra', 'lcy', 'nrt'))}"
                                                                  f"{rnd.randint(19000, 19999)}-FRA"],
                        "X-Cache": [rnd.choice(("MISS", "HIT"))]})
    else:
        headers.update({"Server": [rnd.choice(("nginx", "Apache", "openresty", "Microsoft-IIS/10.0"))],
                        "X-Request-ID": [_uuid(rnd)]})
    return headers


def _security_suite_page(family: str, where: _Where, rnd: random.Random, clock: _Clock) -> tuple[str, dict, str]:
    """A page a security suite on the path serves in place of the site: dangerous site or parental control."""
    code = where.code
    if family == "u_suite_endpoint":
        title, text = _say("danger_title", code), _say("danger_text", code)
        detail = f"<p>Threat: {rnd.choice(('HTML/Phishing.Agent', 'JS/Miner.Gen', 'URL:Mal', 'Trojan.Redirector'))}</p>"
        product = "Aegis Internet Security"
    else:
        title, text = _say("parental_title", code), _say("parental_text", code)
        detail = f"<p>{rnd.choice(_CATEGORIES)}</p>"
        product = "Aegis Family Safety"
    body = (_head(code, title, rnd) + f'<body><div class="container py-5"><h1 class="h3">{title}</h1><p>{text}</p>'
            f"<p><code>http://{where.domain}/</code></p>{detail}"
            f'<p class="text-muted small">{product} &middot; {_uuid(rnd)} &middot; '
            f'{clock.now.isoformat(timespec="seconds")}</p></div></body></html>')
    headers = {"Content-Type": ["text/html; charset=utf-8"], "Cache-Control": ["no-store"], "Connection": ["close"]}
    return rnd.choice(("200 OK", "200 OK", "403 Forbidden")), headers, body


def _router_page(where: _Where, rnd: random.Random, clock: _Clock) -> tuple[str, dict, str]:
    """A home router's parental-controls page: small, with the device's address on the LAN."""
    model = rnd.choice(("HomeLink AX3000", "HomeLink AC1200", "NetBox 7590"))
    body = (f"<html><head><title>{model}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
            f'<div class="box"><h2>{_say("parental_title", where.code)}</h2><p>{_say("router_text", where.code)}</p>'
            f"<p>{where.domain}</p><p>192.168.{rnd.choice((0, 1, 178))}.{rnd.randint(2, 254)} &middot; "
            f"{':'.join(_hex(rnd, 2) for _ in range(6))}</p></div></body></html>")
    return (rnd.choice(("200 OK", "403 Forbidden")),
            {"Server": [rnd.choice(("httpd", "lighttpd/1.4.59", "mini_httpd/1.30"))], "Content-Type": ["text/html"],
             "Connection": ["close"]}, body)


def _corporate_page(where: _Where, rnd: random.Random, clock: _Clock) -> tuple[str, dict, str]:
    """A corporate firewall: a redirect to its blocked.cgi, or the page that script serves."""
    category = rnd.choice(_CATEGORIES)
    target = (f"http://10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.1:8080/cgi-bin/blocked.cgi?url=http%3A%2F%2F"
              f"{where.domain}%2F&cat={category}&ip={_COLLECTOR}&ts={int(clock.now.timestamp())}")
    if rnd.random() < 0.5:
        body = ("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>302 Found</title>\n"
                f"</head><body>\n<h1>Found</h1>\n<p>The document has moved <a href=\"{target}\">here</a>.</p>\n"
                "</body></html>\n")
        return "302 Found", {"Location": [target], "Content-Type": ["text/html; charset=iso-8859-1"]}, body
    title = _say("corp_title", where.code)
    body = (_head(where.code, title, rnd) + f'<body><div class="container"><h1>{title}</h1>'
            f'<p>{_say("corp_text", where.code)}</p><form method="post" action="/cgi-bin/blocked.cgi">'
            f'<input type="hidden" name="url" value="http://{where.domain}/"><input type="hidden" name="cat" '
            f'value="{category}"><input type="hidden" name="ip" value="{_client(rnd)}"><button class="btn btn-primary">'
            f"Request access</button></form><p class=\"small\">{_http_date(clock)}</p></div></body></html>")
    return "200 OK", {"Content-Type": ["text/html; charset=utf-8"], "Cache-Control": ["no-cache"]}, body


def _realistic_unknown(family: str, where: _Where, rnd: random.Random, clock: _Clock) -> tuple[str, dict, str]:
    if family in ("u_suite_endpoint", "u_suite_parental"):
        return _security_suite_page(family, where, rnd, clock)
    if family == "u_router_parental":
        return _router_page(where, rnd, clock)
    if family == "u_corp_blocked_cgi":
        return _corporate_page(where, rnd, clock)
    if family == "u_block_redirect":
        server = rnd.choice(("block.netline", "stop.kaztel", "warn.uzcomm"))
        return (rnd.choice(("302 Found", "302 Moved Temporarily")),
                {"Location": [f"http://{server}.net/?host={where.domain}&t={_hex(rnd, 10)}"], "Content-Length": ["0"],
                 "Connection": ["close"]}, "")
    if family == "u_empty_close":
        return "200 OK", {"Connection": ["close"]}, ""
    raise KeyError(family)


def _realistic_ordinary(where: _Where, rnd: random.Random, clock: _Clock) -> tuple[str, dict, str]:
    """An ordinary page that differs from the template, as varied as the real ones."""
    code, domain = where.code, where.domain
    headers = _cdn_headers(rnd, clock)
    kind = rnd.choice(("redirect", "redirect", "empty", "consent", "news", "news", "app", "region", "maintenance",
                       "challenge", "default"))
    if kind == "redirect":
        target = rnd.choice((f"https://{domain}/", f"https://{domain}/{_LANGUAGE.get(code, 'en')}/",
                             f"https://{code.lower()}.{domain.removeprefix('www.')}/"))
        headers["Location"] = [target]
        if rnd.random() < 0.5:
            headers["Content-Length"] = ["0"]
            return rnd.choice(("301 Moved Permanently", "302 Found", "307 Temporary Redirect")), headers, ""
        return ("301 Moved Permanently", headers,
                "<html>\r\n<head><title>301 Moved Permanently</title></head>\r\n<body>\r\n<center><h1>301 Moved "
                f"Permanently</center>\r\n<hr><center>{headers.get('Server', ['nginx'])[0]}</center>\r\n"
                "</body>\r\n</html>\r\n")
    if kind == "empty":
        # Load balancers' health answers and keep-alive quirks: as empty as a blockpage that says nothing.
        headers = {"Date": headers["Date"], "Connection": ["close"]}
        if rnd.random() < 0.5:
            headers["Content-Length"] = ["0"]
        return rnd.choice(("200 OK", "204 No Content")), headers, ""
    if kind == "consent":
        title = _say("consent_title", code)
        return "200 OK", headers, (
            _head(code, f"{domain} - {title}", rnd) + f'<body><div class="container py-5"><h1>{title}</h1>'
            f'<p>{_say("consent_text", code)}</p><button class="btn btn-primary">OK</button><!-- {_uuid(rnd)} -->'
            "</div></body></html>")
    if kind == "news":
        items = "".join(f'<li><a href="/{_hex(rnd, 6)}">{rnd.choice(DOMAINS)}</a></li>'
                        for _ in range(rnd.randint(2, 5)))
        return "200 OK", headers, (
            _head(code, f"{domain} | {_say('news', code)}", rnd)
            + f"<body class=\"home\"><link rel='stylesheet' href='https://{domain}/wp-content/themes/news/"
            f"style.css?ver={rnd.randint(1, 9)}.{rnd.randint(0, 9)}'><header class=\"navbar\"><a class=\"navbar-brand\" href=\"/\">"
            f"{domain}</a></header><main class=\"container\"><h2>{_say('news', code)}</h2><ul>{items}</ul></main>"
            f"<!-- generated {clock.now.isoformat(timespec='seconds')} in {rnd.randint(20, 900)} ms --></body></html>")
    if kind == "app":
        return "200 OK", headers, (
            _head(code, domain, rnd) + '<body><div id="__next"></div><script id="__NEXT_DATA__" '
            f'type="application/json">{{"buildId":"{_hex(rnd, 20)}","locale":"{_LANGUAGE.get(code, "en")}","page":"/"}}</script></body></html>')
    if kind == "region":
        # A site's own geoblock: it reads like a blockpage, echoes the client and is no censorship.
        return "403 Forbidden", headers, (
            _head(code, domain, rnd) + f'<body><div class="container py-5"><h1>{domain}</h1>'
            f'<p>{_say("region_text", code)}</p><p class="small">{_client(rnd)} &middot; {_uuid(rnd)}</p>'
            "</div></body></html>")
    if kind == "maintenance":
        return "503 Service Unavailable", headers, (
            _head(code, domain, rnd) + f'<body><div class="container py-5"><h1>{_say("maintenance", code)}</h1>'
            f"<p>{_http_date(clock)}</p></div></body></html>")
    return _ordinary_mismatch(domain, code, rnd)


def _realistic_country_and_page(scenario: str, rnd: random.Random) -> tuple[str, str | None]:
    """As the default sample, but with the realistic unknown families and their countries."""
    def anywhere(countries) -> str:
        return rnd.choices(countries, weights=[c[2] for c in countries])[0][0]

    if scenario == "known":
        if rnd.random() < 0.5:
            code = rnd.choice(sorted(_NATIONAL_KNOWN))
            return code, _NATIONAL_KNOWN[code]
        return anywhere([c for c in COUNTRIES if c[0] not in _NATIONAL_KNOWN]), rnd.choice(_VENDOR_KNOWN)
    if scenario == "unknown":
        family = rnd.choice(sorted(REALISTIC_FAMILIES))
        if rnd.random() < 0.8:
            return rnd.choice(REALISTIC_FAMILIES[family]), family
        return anywhere(COUNTRIES), family
    return anywhere(COUNTRIES), None


def _realistic_payload(service: str, status: str, headers: dict, body: str, rnd: random.Random) -> dict | str:
    if service in ("echo", "discard"):
        # The raw reply gets its own Content-Length and Connection lines.
        headers = {k: v for k, v in headers.items() if k not in ("Content-Length", "Connection")}
    return _payload(service, status, headers, body, rnd)


def _realistic_reply(scenario: str, page: str | None, where: _Where, rnd: random.Random, clock: _Clock) -> dict | str:
    if scenario == "mismatch":
        return _realistic_payload(where.service, *_realistic_ordinary(where, rnd, clock), rnd)
    if scenario == "known":
        headers = _cdn_headers(rnd, clock) if rnd.random() < 0.3 else {"Content-Type": ["text/html; charset=utf-8"]}
        return _realistic_payload(where.service, rnd.choice(("200 OK", "403 Forbidden")), headers,
                                  _known_page(page, where.domain, rnd), rnd)
    return _realistic_payload(where.service, *_realistic_unknown(page, where, rnd, clock), rnd)


_REALISTIC = _World(_REALISTIC_SCENARIOS, _realistic_country_and_page, _realistic_reply, per_probe=True)


def _record(
    rnd: random.Random, clock: _Clock, vps: dict, world: _World
) -> tuple[dict, list[tuple[int, str, str | None]]]:
    """One trial and the truth of each test probe: (probe index, truth, page name)."""
    scenario = rnd.choices([s for s, _ in world.scenarios], weights=[w for _, w in world.scenarios])[0]
    code, page = world.country_and_page(scenario, rnd)
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
        where = _Where(domain, code, service, vp)
        reply = world.reply(scenario, page, where, rnd, clock) if answered and not world.per_probe else None
        for k in range(4):
            if answered and world.per_probe:
                reply = world.reply(scenario, page, where, rnd, clock)
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


def write_sample(out_file: str | Path, n: int = 5000, seed: int = 0, realistic: bool = False) -> tuple[Path, Path]:
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
    realistic : bool
        Write the harder sample (:data:`REALISTIC_FAMILIES`): unknown blockpages of the
        kinds found in real Quack data, sharing boilerplate with ordinary pages and
        varying per request. The default sample is unchanged by this option.

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
            record, truths = _record(rnd, clock, vps, _REALISTIC if realistic else _DEFAULT)
            records.write(_go_json(record) + "\n")
            for probe, kind, page in truths:
                truth.write(json.dumps({"source": out.name, "line": line, "probe": probe, "truth": kind,
                                        "page": page}) + "\n")
    return out, truth_path
