"""Where and when the generated sample is measured: countries, domains, the collector, the scan clock.

The generator draws its records over these places and times, and the page modules write
them into replies (a country's language, the collector's address a box echoes back, the
clock's time in a header), so they live here, apart from both.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

# The collector's address, which boxes on the path echo back as the client.
COLLECTOR = "141.212.123.235"

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

# The language of a country's pages; English where a country has none here.
LANGUAGE = {
    **dict.fromkeys(("DE",), "de"), **dict.fromkeys(("FR", "SN", "DZ", "TN", "MA"), "fr"),
    **dict.fromkeys(("ES", "MX", "AR", "VE", "CU", "NI"), "es"), "BR": "pt", "TR": "tr", "IT": "it", "JP": "ja",
    "CN": "zh", "ID": "id", **dict.fromkeys(("RU", "KZ", "UZ", "TJ", "KG"), "ru"),
    **dict.fromkeys(("AE", "SA", "QA", "KW", "OM", "EG"), "ar"),
}


class Clock:
    """Scan time moving forward, printed as Go prints it: up to nine fraction digits, zeros trimmed."""

    def __init__(self, start: datetime, rnd: random.Random) -> None:
        self.now = start
        self.rnd = rnd

    def span(self, ms: float) -> tuple[str, str]:
        """Start and end times of an exchange lasting ``ms``; the clock moves past it."""
        begin = self.now
        self.now = begin + timedelta(milliseconds=ms + 5)
        return self._text(begin), self._text(begin + timedelta(milliseconds=ms))

    def _text(self, t: datetime) -> str:
        seconds, _, rest = t.isoformat(timespec="microseconds").partition(".")
        micro, offset = rest[:6], rest[6:]
        fraction = f"{micro}{self.rnd.randint(0, 999):03d}".rstrip("0")
        return f"{seconds}{'.' + fraction if fraction else ''}{offset}"

    def http_date(self) -> str:
        """The time now as an HTTP ``Date`` header writes it."""
        return self.now.astimezone(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


class Where(NamedTuple):
    """Where a probe went: the test domain, the country, the service and the vantage point."""

    domain: str
    code: str
    service: str
    vp: str
