"""Parts that ordinary pages and blockpages of the generated sample share.

Real blockpages are hard to tell from ordinary pages because they are made of the same
parts: the reader's language, the same frameworks in the head, CDN headers, request ids
that change on every request. :mod:`quack.sample.pages` and :mod:`quack.sample.blockpages`
build their pages from these.
"""

from __future__ import annotations

import base64
import random

from quack.sample.world import COLLECTOR, LANGUAGE, Clock

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


def say(key: str, code: str) -> str:
    """The phrase ``key`` in the language of country ``code``, or in English where it has none."""
    phrases = _PHRASES[key]
    return phrases.get(LANGUAGE.get(code, "en"), phrases["en"])


def random_hex(rnd: random.Random, length: int) -> str:
    """``length`` random hexadecimal digits, as in request ids and tokens."""
    return "".join(rnd.choice("0123456789abcdef") for _ in range(length))


def random_uuid(rnd: random.Random) -> str:
    """A random version-4 UUID."""
    text = random_hex(rnd, 32)
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{text[16:20]}-{text[20:]}"


def client_address(rnd: random.Random) -> str:
    """The client's address as a box in the path saw it: the collector and its source port."""
    return f"{COLLECTOR}:{rnd.randint(1024, 65535)}"


def page_head(code: str, title: str, rnd: random.Random) -> str:
    """The boilerplate a page opens with; ordinary pages and blockpages share it."""
    bootstrap = rnd.choice(("4.6.2", "5.1.3", "5.2.3", "5.3.2"))
    parts = [f'<!DOCTYPE html><html lang="{LANGUAGE.get(code, "en")}"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{title}</title>",
             f'<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@{bootstrap}'
             '/dist/css/bootstrap.min.css">']
    if rnd.random() < 0.6:
        parts.append(f'<script src="https://code.jquery.com/jquery-{rnd.choice(("3.5.1", "3.6.0", "3.7.1"))}.min.js">'
                     "</script>")
    if rnd.random() < 0.3:
        parts.append('<link rel="preconnect" href="https://fonts.gstatic.com" crossorigin>')
    return "".join(parts) + "</head>"


def cdn_headers(rnd: random.Random, clock: Clock) -> dict[str, list[str]]:
    """Headers of a page served through a CDN, with the ids that change on each request."""
    kind = rnd.choice(("cloudflare", "akamai", "cloudfront", "fastly", "origin"))
    headers = {"Date": [clock.http_date()], "Content-Type": ["text/html; charset=utf-8"]}
    if kind == "cloudflare":
        ray = f"{random_hex(rnd, 16)}-{rnd.choice(('FRA', 'AMS', 'SIN', 'IAD'))}"
        headers.update({"Server": ["cloudflare"], "CF-RAY": [ray],
                        "CF-Cache-Status": [rnd.choice(("DYNAMIC", "HIT", "MISS"))]})
    elif kind == "akamai":
        headers.update({"Server": ["AkamaiGHost"], "X-Akamai-Request-ID": [random_hex(rnd, 8)]})
    elif kind == "cloudfront":
        headers.update({"Via": [f"1.1 {random_hex(rnd, 32)}.cloudfront.net (CloudFront)"],
                        "X-Cache": [rnd.choice(("Miss from cloudfront", "Hit from cloudfront"))],
                        "X-Amz-Cf-Id": [base64.b64encode(rnd.randbytes(42)).decode()]})
    elif kind == "fastly":
        headers.update({"Via": ["1.1 varnish"], "X-Served-By": [f"cache-{rnd.choice(('fra', 'lcy', 'nrt'))}"
                                                                  f"{rnd.randint(19000, 19999)}-FRA"],
                        "X-Cache": [rnd.choice(("MISS", "HIT"))]})
    else:
        headers.update({"Server": [rnd.choice(("nginx", "Apache", "openresty", "Microsoft-IIS/10.0"))],
                        "X-Request-ID": [random_uuid(rnd)]})
    return headers
