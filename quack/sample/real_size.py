"""Ordinary pages at the size real sites send them, for ``write_sample(real_size=True)``.

A real site's page is kilobytes: a head of meta, link and script tags, inline CSS and
JavaScript, navigation, the article, a footer. Each site's fixed parts are made once;
each request then gets its own ids, tokens, article and links, so that the pages
compress about as real HTML does, not a hundredfold.
"""

from __future__ import annotations

import base64
import functools
import random
from typing import NamedTuple

from quack.sample.parts import random_hex, random_uuid
from quack.sample.world import LANGUAGE

_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more can who said its about into "
    "than them only other time new some could these two may first then do any like my now over such our man me "
    "even most made after also did many before must through back years where much your way well down should "
    "because each just those people state city government election minister report police court market health "
    "school water energy climate security border trade economy company price bank study research science data "
    "network internet service access mobile users privacy rights freedom press media news world region country "
    "capital council week month today yesterday official spokesman agency statement protest vote parliament law "
    "policy budget tax growth inflation rate export import oil gas power coal plant factory workers union strike "
    "hospital doctors patients vaccine virus disease season team match league final player coach goal victory "
    "defeat film music festival artist museum book author history culture language university students teachers "
    "farmers harvest weather storm flood drought fire road rail airport flight travel tourism hotel housing rent "
    "family children women men life home house street night morning evening century decade future past "
    "open public private local national international former current major minor early late large small high low "
    "good bad better best river island forest village lake"
).split()  # 256 words: one per value of a random byte

_CSS_PROPERTIES = (
    "display:flex", "display:block", "display:grid", "margin:0", "margin:0 auto", "padding:0", "padding:1rem",
    "padding:.5rem 1rem", "color:#212529", "color:#fff", "color:#6c757d", "background:#fff", "background:#f8f9fa",
    "font-size:1rem", "font-size:.875rem", "font-size:1.25rem", "font-weight:700", "line-height:1.5",
    "border:0", "border-bottom:1px solid #dee2e6", "border-radius:.25rem", "position:relative", "position:absolute",
    "top:0", "left:0", "width:100%", "max-width:1140px", "height:auto", "overflow:hidden", "text-align:center",
    "align-items:center", "justify-content:space-between", "flex-wrap:wrap", "gap:1rem", "list-style:none",
    "text-decoration:none", "cursor:pointer", "transition:opacity .2s ease-in-out", "opacity:.8", "z-index:1030",
)
_CSS_NAMES = ("header", "nav", "menu", "item", "link", "brand", "logo", "container", "row", "col", "card", "title",
              "teaser", "article", "lead", "byline", "meta", "tag", "media", "caption", "footer", "social", "btn",
              "search", "banner", "promo", "grid", "list", "share", "related", "author", "date", "section")
_JS_SNIPPETS = (
    "function(e){var t=document.querySelectorAll(e);return Array.prototype.slice.call(t)}",
    "window.addEventListener('load',function(){document.body.classList.add('loaded')})",
    "if(!window.IntersectionObserver){var s=document.createElement('script');s.src='/js/polyfill.js';"
    "document.head.appendChild(s)}",
    "(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':new Date().getTime(),event:'gtm.js'});"
    "var f=d.getElementsByTagName(s)[0],j=d.createElement(s);j.async=true;f.parentNode.insertBefore(j,f)})",
    "document.querySelectorAll('.share a').forEach(function(a){a.addEventListener('click',function(e){"
    "e.preventDefault();window.open(a.href,'share','width=600,height=400')})})",
    "var lazy=[].slice.call(document.querySelectorAll('img[data-src]'));lazy.forEach(function(i){i.src=i.dataset.src})",
    "try{localStorage.setItem('visited',Date.now())}catch(e){}",
    "document.getElementById('menu-toggle').onclick=function(){document.body.classList.toggle('menu-open')}",
)


class _Site(NamedTuple):
    """The parts of one site's pages that stay the same from request to request."""

    head: str
    style: str
    nav: str
    footer: str
    script: str


def _words(rnd: random.Random, count: int) -> str:
    """``count`` words: one random byte each, as there are 256 words, which is fast."""
    return " ".join(map(_WORDS.__getitem__, rnd.randbytes(count)))


@functools.lru_cache(maxsize=None)
def _site(domain: str) -> _Site:
    """The fixed parts of ``domain``'s pages, the same in every sample."""
    rnd = random.Random(f"site {domain}")
    build, tag = random_hex(rnd, 12), f"G-{random_hex(rnd, 10).upper()}"
    head = (f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="description" content="{_words(rnd, rnd.randint(12, 24))}">\n'
            f'<meta property="og:site_name" content="{domain}">\n'
            f'<meta name="theme-color" content="#{random_hex(rnd, 6)}">\n'
            f'<link rel="icon" href="/favicon.ico">\n<link rel="canonical" href="https://{domain}/">\n'
            + "".join(f'<link rel="stylesheet" href="/static/css/{name}.{random_hex(rnd, 8)}.css">\n'
                      for name in rnd.sample(("main", "vendor", "fonts", "print", "theme"), rnd.randint(1, 3)))
            + f'<link rel="preconnect" href="https://cdn.{domain.removeprefix("www.")}">\n'
            + f'<script async src="https://www.googletagmanager.com/gtag/js?id={tag}"></script>\n'
            + "".join(f'<script defer src="/static/js/{name}.{build}.js"></script>\n'
                      for name in rnd.sample(("runtime", "vendor", "app", "consent", "ads"), rnd.randint(2, 4))))
    style = "".join(
        f".{rnd.choice(_CSS_NAMES)}-{rnd.choice(_CSS_NAMES)}{{{';'.join(rnd.sample(_CSS_PROPERTIES, rnd.randint(2, 6)))}}}"
        + ("\n" if rnd.random() < 0.2 else "") for _ in range(min(120, int(rnd.expovariate(1 / 25)))))
    menu = rnd.sample(_WORDS[150:], rnd.randint(6, 14))
    nav = (f'<header class="site-header"><a class="brand" href="/">'
           f'<img src="/static/img/logo.{random_hex(rnd, 8)}.svg" '
           f'alt="{domain}"></a>\n<nav class="menu"><ul>'
           + "".join(f'<li class="menu-item"><a href="/{word}/">{word.capitalize()}</a></li>' for word in menu)
           + '</ul></nav>\n<form class="search" action="/search"><input name="q" type="search"></form></header>\n')
    footer = ('<footer class="site-footer"><ul class="footer-links">'
              + "".join(f'<li><a href="/{word}">{word.capitalize()}</a></li>'
                        for word in rnd.sample(_WORDS[150:], rnd.randint(5, 12)))
              + f'</ul><p class="copyright">&copy; {rnd.randint(1995, 2015)}-2021 {domain}. {_words(rnd, 12)}.</p>'
              + "</footer>\n")
    script = ";".join(rnd.choices(_JS_SNIPPETS, k=rnd.randint(1, 8)))
    return _Site(head, style, nav, footer, script)


def _page_length(rnd: random.Random) -> int:
    """A page's length in characters: log-normal around 11 kB, kept between 2 kB and 60 kB."""
    return min(60_000, max(2_000, int(rnd.lognormvariate(9.3, 0.8))))


def real_page(small: str, domain: str, code: str, rnd: random.Random) -> str:
    """``small``, an ordinary page's text, inside a whole page of ``domain`` as a browser gets it.

    The small page's title and body become the page's title and the top of its main
    column; the site's head, styles, navigation and footer surround them, and an article,
    links and a script with this request's ids fill the page to a length drawn by
    :func:`_page_length`.
    """
    site = _site(domain)
    title = small[small.find("<title>") + 7:small.find("</title>")] if "<title>" in small else domain
    start = small.find("<body")
    inner = small[small.find(">", start) + 1:small.rfind("</body>")] if start >= 0 else small
    top = (f'<!DOCTYPE html>\n<html lang="{LANGUAGE.get(code, "en")}">\n<head>\n<meta charset="utf-8">\n'
           f"<title>{title}</title>\n{site.head}<style>{site.style}</style>\n</head>\n"
           f'<body class="page page-{random_hex(rnd, 4)}">\n{site.nav}<main class="container">\n{inner}\n'
           f'<article class="article" data-id="{rnd.randint(10**6, 10**8)}"><h1>{_words(rnd, rnd.randint(5, 12)).capitalize()}</h1>\n')
    bottom = (f"</article>\n</main>\n{site.footer}<script nonce=\"{base64.b64encode(rnd.randbytes(12)).decode()}\">"
              f'window.__CONFIG__={{"requestId":"{random_uuid(rnd)}","csrf":"{random_hex(rnd, 40)}",'
              f'"edition":"{code.lower()}"}};'
              f"{site.script}</script>\n</body>\n</html>\n")
    parts, length = [top], len(top) + len(bottom)
    target = _page_length(rnd)
    while length < target:
        if rnd.random() < 0.15:
            part = (f'<aside class="related"><ul>'
                    + "".join(f'<li><a href="/{rnd.choice(_WORDS[150:])}/{rnd.randint(10**5, 10**7)}">'
                              f"{_words(rnd, rnd.randint(4, 10))}</a></li>" for _ in range(rnd.randint(3, 6)))
                    + "</ul></aside>\n")
        else:
            part = f"<p>{_words(rnd, rnd.randint(30, 120)).capitalize()}.</p>\n"
        parts.append(part)
        length += len(part)
    parts.append(bottom)
    return "".join(parts)
