"""Ordinary pages of the generated sample that still differ from the template.

Real sites answer a probe with other pages than the template: geo redirects, cookie
consent, CDN challenges, server defaults, and in the realistic sample news pages, app
shells, maintenance notices and a site's own geoblock, which reads like a blockpage and
is no censorship. Only formatting lives here; which page a record gets, and when, is
decided in :mod:`quack.sample.generator`.
"""

from __future__ import annotations

import random

from quack.sample.parts import cdn_headers, client_address, page_head, random_hex, random_uuid, say
from quack.sample.world import DOMAINS, LANGUAGE, Clock, Where


def ordinary_mismatch(domain: str, country: str, rnd: random.Random) -> tuple[str, dict, str]:
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


def realistic_ordinary(where: Where, rnd: random.Random, clock: Clock) -> tuple[str, dict, str]:
    """An ordinary page that differs from the template, as varied as the real ones."""
    code, domain = where.code, where.domain
    headers = cdn_headers(rnd, clock)
    kind = rnd.choice(("redirect", "redirect", "empty", "consent", "news", "news", "app", "region", "maintenance",
                       "challenge", "default"))
    if kind == "redirect":
        target = rnd.choice((f"https://{domain}/", f"https://{domain}/{LANGUAGE.get(code, 'en')}/",
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
        title = say("consent_title", code)
        return "200 OK", headers, (
            page_head(code, f"{domain} - {title}", rnd) + f'<body><div class="container py-5"><h1>{title}</h1>'
            f'<p>{say("consent_text", code)}</p><button class="btn btn-primary">OK</button>'
            f"<!-- {random_uuid(rnd)} -->"
            "</div></body></html>")
    if kind == "news":
        items = "".join(f'<li><a href="/{random_hex(rnd, 6)}">{rnd.choice(DOMAINS)}</a></li>'
                        for _ in range(rnd.randint(2, 5)))
        return "200 OK", headers, (
            page_head(code, f"{domain} | {say('news', code)}", rnd)
            + f"<body class=\"home\"><link rel='stylesheet' href='https://{domain}/wp-content/themes/news/"
            f"style.css?ver={rnd.randint(1, 9)}.{rnd.randint(0, 9)}'><header class=\"navbar\">"
            "<a class=\"navbar-brand\" href=\"/\">"
            f"{domain}</a></header><main class=\"container\"><h2>{say('news', code)}</h2><ul>{items}</ul></main>"
            f"<!-- generated {clock.now.isoformat(timespec='seconds')} in {rnd.randint(20, 900)} ms --></body></html>")
    if kind == "app":
        return "200 OK", headers, (
            page_head(code, domain, rnd) + '<body><div id="__next"></div><script id="__NEXT_DATA__" '
            f'type="application/json">{{"buildId":"{random_hex(rnd, 20)}","locale":"{LANGUAGE.get(code, "en")}",'
            '"page":"/"}</script></body></html>')
    if kind == "region":
        # A site's own geoblock: it reads like a blockpage, echoes the client and is no censorship.
        return "403 Forbidden", headers, (
            page_head(code, domain, rnd) + f'<body><div class="container py-5"><h1>{domain}</h1>'
            f'<p>{say("region_text", code)}</p><p class="small">{client_address(rnd)} &middot; {random_uuid(rnd)}</p>'
            "</div></body></html>")
    if kind == "maintenance":
        return "503 Service Unavailable", headers, (
            page_head(code, domain, rnd) + f'<body><div class="container py-5"><h1>{say("maintenance", code)}</h1>'
            f"<p>{clock.http_date()}</p></div></body></html>")
    return ordinary_mismatch(domain, code, rnd)
