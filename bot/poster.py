"""Printable outreach: an A4 poster and an A6 card (two pages of one PDF) in one language.

They say what the service is, how to reach it (the SMS number, the Telegram bot and a QR code
of its deep link, which opens the bot in the poster's language on the rights menu), the
country's emergency numbers, and a marked space with local organisations from the directory,
or left blank for an NGO to write its own in.

fpdf2 draws the PDF and shapes text with HarfBuzz (uharfbuzz): Arabic letters join, and
fpdf2's own Unicode bidi algorithm runs Arabic lines right to left, with numbers, handles and
Latin names inside them left to right (they are wrapped in bidi isolates). The QR code is
segno's matrix drawn as vector rectangles, sharp at any print size, read by any phone camera.
The fonts are Debian's Noto (fonts-noto-core, `make fonts`): Noto Sans covers the Latin and
Cyrillic letters of every shipped language and of the places and organisations named (Uzbek ʻ,
Turkish ğ ı ş, Tajik and Kyrgyz ҳ ӣ ӯ ҷ қ ғ ң ө ү), Noto Sans Arabic the Arabic; each is the
other's fallback for a word in the other script.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from babel import Locale

from flows.emergency import SERVICES, country_name, directory
from flows.i18n import N_, SHIPPED, Translator, language_name, translator

if TYPE_CHECKING:
    from fpdf import FPDF

    from bot.settings import Settings
    from storage.directory import Listing

# Debian and Ubuntu (fonts-noto-core), then Fedora and Arch, where the same files live.
FONT_DIRS = (
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/google-noto"),
    Path("/usr/share/fonts/noto"),
)
FONT_FILES = {
    ("sans", ""): "NotoSans-Regular.ttf",
    ("sans", "B"): "NotoSans-Bold.ttf",
    ("arabic", ""): "NotoSansArabic-Regular.ttf",
    ("arabic", "B"): "NotoSansArabic-Bold.ttf",
}
FONTS_TARGET = "make fonts"

# What the local organisations' space lists when no --org is given: every kind a person on
# the poster may need, but not consulates (they serve one nationality each).
POSTER_KINDS = frozenset(
    {"trafficking", "domestic_violence", "child", "labour", "migrant", "legal_aid", "general"}
)
DEEP_LINK_TARGET = "rights"

HEADLINE = N_("Free, confidential help in your language")
WHO = N_("Has your employer taken your passport or held back your pay? Is someone hurting you "
         "at home? Are you worried about a child?")
WHAT = N_("Write to us. We tell you your rights in {country}, which organisations there can help "
          "you, and the numbers to call in an emergency.")
FREE = N_("The service is free and confidential. Your phone company may charge its usual price "
          "for an SMS.")
SMS_HEADING = N_("Send an SMS to")
TELEGRAM_HEADING = N_("Write to our Telegram bot")
SCAN = N_("Scan the code with your phone's camera.")
DANGER = N_("In danger now? Call (in {country}):")
ORGANISATIONS = N_("Local organisations")
WRITE_IN_ORGANISATION = N_("Local organisation:")
WRITE_IN_PHONE = N_("Phone:")
SMS_LINE = N_("SMS")
ALL_HOURS = N_("24 hours, every day")
LANGUAGES = N_("Languages: {languages}")
WE_ANSWER_IN = N_("We answer in: {languages}")

INK = (33, 33, 33)
MUTED = (90, 90, 90)
WHITE = (255, 255, 255)
BAND = (11, 79, 108)
ALARM = (179, 38, 30)
PT = 25.4 / 72  # one typographic point in millimetres

# Unicode bidi isolates: a number or a name keeps its own left-to-right order inside Arabic
# text ("8 800 2000 122", not "122 2000 800 8"; "@bot", not "bot@").
LRI, PDI = "\u2066", "\u2069"


class PosterError(Exception):
    """The poster cannot be made; the message says why and what to do."""


@dataclass(frozen=True)
class Phone:
    number: str
    sms: bool = False


@dataclass(frozen=True)
class Organisation:
    """One entry of the local organisations' space, as printed."""

    name: str
    phones: tuple[Phone, ...]
    open_24_7: bool = False
    languages: tuple[str, ...] = ()  # ISO 639-1


@dataclass(frozen=True)
class Poster:
    locale: str
    country: str  # ISO 3166-1 alpha-2
    service_name: str
    sms_number: str | None = None
    telegram_bot: str | None = None  # the bot's username, without "@"
    organisations: tuple[Organisation, ...] = ()  # none: the space is left to write in

    @property
    def deep_link(self) -> str | None:
        if not self.telegram_bot:
            return None
        return f"https://t.me/{self.telegram_bot}?start={self.locale}-{DEEP_LINK_TARGET}"


def organisation_from(listing: Listing) -> Organisation:
    name = listing.organisation
    if listing.name and listing.name.casefold() not in name.casefold():
        name = f"{name}: {listing.name}"
    return Organisation(
        name=name,
        phones=tuple(Phone(line.number, line.kind == "text") for line in listing.phones),
        open_24_7=listing.open_24_7,
        languages=listing.languages,
    )


def emergency_lines(country: str) -> list[tuple[str, list[str]]]:
    """The country's numbers, one line per number with every service it answers (as the
    bot's emergency reply groups them). Empty when the country has none on file."""
    lines: dict[str, list[str]] = {}
    for n in directory().countries.get(country, ()):
        services = lines.setdefault(n.number, [])
        if n.service not in services:
            services.append(n.service)
    return list(lines.items())


def find_fonts(dirs: Sequence[Path] = FONT_DIRS) -> dict[tuple[str, str], Path]:
    for folder in dirs:
        found = {key: folder / name for key, name in FONT_FILES.items()}
        if all(path.is_file() for path in found.values()):
            return found
    raise PosterError(
        f"the poster fonts ({', '.join(sorted(set(FONT_FILES.values())))}) are not installed "
        f"in {' or '.join(str(d) for d in dirs)}: run `{FONTS_TARGET}` (Debian's "
        "fonts-noto-core)"
    )


# --- drawing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Sizes of one page (mm and pt)."""

    width: float
    height: float
    margin: float
    service: float
    headline: float
    headline_lines: int
    who: float | None  # None: left out
    what: float | None
    free: float
    heading: float
    number: float
    body: float
    qr: float
    side_by_side: bool  # SMS and Telegram in two columns
    write_in_entries: int
    footer: float | None
    gap: float


A4 = Layout(width=210, height=297, margin=14, service=13, headline=30, headline_lines=3,
            who=14, what=13, free=10.5, heading=14, number=28, body=12.5, qr=42,
            side_by_side=True, write_in_entries=3, footer=10, gap=6)
A6 = Layout(width=105, height=148, margin=7, service=8, headline=14, headline_lines=2,
            who=None, what=None, free=7, heading=8.5, number=15, body=8, qr=30,
            side_by_side=False, write_in_entries=2, footer=None, gap=3)


class _Sheet:
    """One page, drawn in reading order: `start` is the distance from the edge a line
    starts at (left, or right for a right-to-left language)."""

    def __init__(self, pdf: FPDF, t: Translator, layout: Layout) -> None:
        self.pdf, self.t, self.layout = pdf, t, layout
        self.rtl = t.rtl
        self.family = "arabic" if self.rtl else "sans"
        # Arabic letters reach further above and below the line than Latin ones.
        self.leading = 1.5 if self.rtl else 1.3

    def x(self, start: float, width: float) -> float:
        return self.layout.width - start - width if self.rtl else start

    def ltr(self, text: str) -> str:
        return f"{LRI}{text}{PDI}" if self.rtl else text

    def _font(self, size: float, bold: bool, color: tuple[int, int, int]) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.set_text_color(*color)

    def height(self, text: str, start: float, width: float, size: float,
               bold: bool = False) -> float:
        return self.write(text, start, 0, width, size, bold, dry_run=True)

    def write(self, text: str, start: float, y: float, width: float, size: float,
              bold: bool = False, color: tuple[int, int, int] = INK, dry_run: bool = False,
              ) -> float:
        """Draws a paragraph aligned to the start side; returns the y below it (or its
        height, on a dry run)."""
        from fpdf.enums import MethodReturnValue, XPos, YPos

        self._font(size, bold, color)
        self.pdf.set_xy(self.x(start, width), y)
        line, align = size * PT * self.leading, "R" if self.rtl else "L"
        if dry_run:
            result = self.pdf.multi_cell(width, line, text, align=align, dry_run=True,
                                         output=MethodReturnValue.HEIGHT)
            return float(result)  # type: ignore[arg-type]
        self.pdf.multi_cell(width, line, text, align=align, new_x=XPos.LEFT, new_y=YPos.NEXT)
        return float(self.pdf.get_y())

    def fit(self, text: str, start: float, width: float, size: float, lines: int,
            bold: bool = False) -> float:
        """The largest size up to `size` at which `text` takes at most `lines` lines."""
        while size > 6:
            if self.height(text, start, width, size, bold) <= lines * size * PT * self.leading + .1:
                break
            size -= 0.5
        return size

    def text_width(self, text: str, size: float, bold: bool = False) -> float:
        self._font(size, bold, INK)
        return float(self.pdf.get_string_width(text))

    def fill(self, start: float, y: float, width: float, height: float,
             color: tuple[int, int, int]) -> None:
        self.pdf.set_fill_color(*color)
        self.pdf.rect(self.x(start, width), y, width, height, style="F")

    def rule(self, start: float, end: float, y: float, color: tuple[int, int, int] = MUTED,
             ) -> None:
        self.pdf.set_draw_color(*color)
        self.pdf.set_line_width(0.3)
        self.pdf.line(self.x(start, 0), y, self.x(end, 0), y)

    def dashed_box(self, start: float, y: float, width: float, height: float) -> None:
        self.pdf.set_draw_color(*MUTED)
        self.pdf.set_line_width(0.5)
        self.pdf.set_dash_pattern(dash=2.5, gap=1.5)
        self.pdf.rect(self.x(start, width), y, width, height, style="D", round_corners=True,
                      corner_radius=2)
        self.pdf.set_dash_pattern()

    def qr(self, data: str, start: float, y: float, size: float) -> None:
        """A QR code of `data`, quiet zone included, `size` mm square; dark modules are
        joined along each row so a printer gets a few hundred rectangles, not thousands."""
        import segno

        # Level Q (25 % of the code can be lost): a poster gets torn, folded and dirty.
        matrix = segno.make(data, error="q", micro=False).matrix
        quiet = 4
        module = size / (len(matrix) + 2 * quiet)
        left = self.x(start, size)
        self.pdf.set_fill_color(*WHITE)
        self.pdf.rect(left, y, size, size, style="F")
        self.pdf.set_fill_color(0, 0, 0)
        for r, row in enumerate(matrix):
            c = 0
            while c < len(row):
                if not row[c]:
                    c += 1
                    continue
                run = c
                while run < len(row) and row[run]:
                    run += 1
                # A hair wider than the module, so no white seam shows between neighbours.
                self.pdf.rect(left + (quiet + c) * module, y + (quiet + r) * module,
                              (run - c) * module + 0.01, module + 0.01, style="F")
                c = run


def render(poster: Poster, fonts: dict[tuple[str, str], Path] | None = None) -> bytes:
    """The PDF: page 1 the A4 poster, page 2 the A6 card."""
    from fpdf import FPDF

    if poster.locale not in SHIPPED:
        raise PosterError(f"no such language: {poster.locale!r} (one of {', '.join(SHIPPED)})")
    fonts = fonts or find_fonts()
    # fontTools reports every step of subsetting a font at INFO: dozens of lines a poster.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    t = translator(poster.locale)
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    for (family, style), path in fonts.items():
        pdf.add_font(family, style, str(path))
    # Each paragraph takes its direction from its first letter (Unicode's rule): an Arabic
    # sentence runs right to left, an organisation's Latin or Cyrillic name left to right;
    # the layout (alignment, which side the QR code is on) follows the poster's language.
    pdf.set_text_shaping(True)
    pdf.set_fallback_fonts(["sans"] if t.rtl else ["arabic"])
    pdf.set_lang(poster.locale)
    pdf.set_title(t(HEADLINE))
    pdf.set_creator("hotline poster")
    for layout in (A4, A6):
        pdf.add_page(format=(layout.width, layout.height))
        _draw(_Sheet(pdf, t, layout), poster)
    return bytes(pdf.output())


def _draw(s: _Sheet, poster: Poster) -> None:
    t, L = s.t, s.layout
    m, width = L.margin, L.width - 2 * L.margin
    country = country_name(poster.country, poster.locale)

    # The band: who we are and what we are for, white on blue.
    headline = s.fit(t(HEADLINE), m, width, L.headline, L.headline_lines, bold=True)
    band = m * 0.8 + s.height(poster.service_name, m, width, L.service, bold=True)
    band += s.height(t(HEADLINE), m, width, headline, bold=True) + L.gap * 0.5
    if L.who:
        band += s.height(t(WHO), m, width, L.who) + L.gap * 0.5
    band += m * 0.6
    s.fill(0, 0, L.width, band, BAND)
    y = s.write(poster.service_name, m, m * 0.8, width, L.service, bold=True, color=WHITE)
    y = s.write(t(HEADLINE), m, y, width, headline, bold=True, color=WHITE) + L.gap * 0.5
    if L.who:
        s.write(t(WHO), m, y, width, L.who, color=WHITE)
    y = band + L.gap

    if L.what:
        y = s.write(t(WHAT).format(country=country), m, y, width, L.what) + L.gap * 0.4
    y = s.write(t(FREE), m, y, width, L.free, color=MUTED) + L.gap

    y = _contacts(s, poster, y) + L.gap
    y = _emergency(s, poster, country, y) + L.gap

    bottom = L.height - m
    if L.footer:
        names = " · ".join(s.ltr(language_name(code)) if Locale.parse(code).character_order
                           == "left-to-right" else language_name(code) for code in SHIPPED)
        footer = t(WE_ANSWER_IN).format(languages=names)
        bottom -= s.height(footer, m, width, L.footer)
        s.write(footer, m, bottom, width, L.footer, color=MUTED)
        bottom -= L.gap * 0.5
    _organisations(s, poster, y, bottom)


def _contacts(s: _Sheet, poster: Poster, y: float) -> float:
    """The SMS number and the Telegram bot. The poster has them in two columns, the QR code
    under the bot's heading; the card has both texts in one column and the QR code beside
    them. Returns the y below them."""
    t, L = s.t, s.layout
    m, width = L.margin, L.width - 2 * L.margin
    link, bot = poster.deep_link, poster.telegram_bot
    if L.side_by_side:
        column = (width - L.gap) / 2 if poster.sms_number and link else width
        qr_start, text_width = m + (column + L.gap if poster.sms_number else 0), column
    else:
        column = text_width = width - (L.qr + L.gap if link else 0)
        qr_start = m + text_width + L.gap
    below = y
    if poster.sms_number:
        below = s.write(t(SMS_HEADING), m, y, column, L.heading, bold=True)
        below = s.write(s.ltr(poster.sms_number), m, below, column, L.number, bold=True,
                        color=BAND)
    if not (link and bot):
        return below
    # The QR code's quiet zone is white space: text level with its top starts below it.
    inset = L.qr * 4 / 41
    if L.side_by_side:
        s.qr(link, qr_start, y, L.qr)
        text_start = qr_start + L.qr + L.gap * 0.5
        text_width = width - (text_start - m)
        ty = y + inset
    else:
        s.qr(link, qr_start, y - inset, L.qr)
        text_start, ty = m, below + (L.gap * 0.5 if poster.sms_number else 0)
    handle = "@" + bot
    ty = s.write(t(TELEGRAM_HEADING), text_start, ty, text_width, L.heading, bold=True)
    ty = s.write(s.ltr(handle), text_start, ty, text_width,
                 s.fit(handle, text_start, text_width, L.heading, 1, True), bold=True,
                 color=BAND)
    ty = s.write(t(SCAN), text_start, ty + L.gap * 0.3, text_width, L.free, color=MUTED)
    return max(below, ty, y - inset + L.qr if not L.side_by_side else y + L.qr)


def _emergency(s: _Sheet, poster: Poster, country: str, y: float) -> float:
    """The country's emergency numbers beside a red bar. Returns the y below them."""
    t, L = s.t, s.layout
    m, width = L.margin, L.width - 2 * L.margin
    bar, indent = L.gap * 0.4, L.gap
    lines = emergency_lines(poster.country)
    number_width = max(s.text_width(n, L.body * 1.1, bold=True) for n, _ in lines) + L.gap
    top = y
    y = s.write(t(DANGER).format(country=country), m + indent, y, width - indent, L.heading,
                bold=True, color=ALARM)
    for number, services in lines:
        labels = ", ".join(t(SERVICES.get(service, SERVICES["general"])) for service in services)
        s.write(s.ltr(number), m + indent, y, number_width, L.body * 1.1, bold=True)
        y = s.write(labels, m + indent + number_width, y + L.body * 0.1 * PT, width - indent -
                    number_width, L.body)
    s.fill(m, top, bar, y - top, ALARM)
    return y


def _organisations(s: _Sheet, poster: Poster, y: float, bottom: float) -> None:
    """The marked space: the organisations that fit, or lines to write one in."""
    t, L = s.t, s.layout
    m, width = L.margin, L.width - 2 * L.margin
    pad = L.gap * 0.8
    inner, start = width - 2 * pad, m + pad
    if bottom - y < 3 * L.heading * PT * s.leading:
        return  # no room at all (a country with very many emergency numbers on the card)
    s.dashed_box(m, y, width, bottom - y)
    cy = s.write(t(ORGANISATIONS), start, y + pad * 0.7, inner, L.heading, bold=True)
    shown = 0
    for org in poster.organisations:
        block = _organisation_text(s, org)
        needed = sum(s.height(text, start, inner, size, bold) for text, size, bold in block)
        if cy + L.gap * 0.4 + needed > bottom - pad * 0.5:
            break
        cy += L.gap * 0.4
        for text, size, bold in block:
            cy = s.write(text, start, cy, inner, size, bold)
        shown += 1
    if shown:
        return
    # Left blank for an NGO to write in: "Local organisation: ____" and "Phone: ____" lines.
    line = L.body * PT * s.leading
    entry = 2 * (line + L.gap * 0.8)
    room = bottom - pad - cy
    for _ in range(max(1, min(L.write_in_entries, int(room // (entry + L.gap * 0.5))))):
        for label in (t(WRITE_IN_ORGANISATION), t(WRITE_IN_PHONE)):
            cy += L.gap * 0.8
            s.write(label, start, cy, inner, L.body)
            used = s.text_width(label, L.body) + L.gap * 0.5
            s.rule(start + used, start + inner, cy + line)
            cy += line
        cy += L.gap * 0.5


def _organisation_text(s: _Sheet, org: Organisation) -> list[tuple[str, float, bool]]:
    t, size = s.t, s.layout.body
    phones = "   ".join(s.ltr(p.number) + (f" ({t(SMS_LINE)})" if p.sms else "")
                        for p in org.phones)
    details = []
    if org.open_24_7:
        details.append(t(ALL_HOURS))
    if org.languages:
        names = Locale.parse(s.t.locale).languages
        details.append(t(LANGUAGES).format(
            languages=", ".join(names.get(code, code) for code in org.languages)))
    block = [(org.name, size, True), (phones, size * 1.1, True)]
    if details:
        block.append((" · ".join(details), size * 0.9, False))
    return [(text, size, bold) for text, size, bold in block if text]


# --- the command -----------------------------------------------------------------------------


async def directory_organisations(database_url: str, country: str, org_id: str | None,
                                  kinds: Collection[str] = POSTER_KINDS, limit: int = 20,
                                  ) -> list[Listing]:
    """From the directory: the service or organisation `org_id`, else the ones that serve
    `country`."""
    from storage.db import create_engine, sessionmaker
    from storage.directory import DirectoryStore

    engine = create_engine(database_url)
    try:
        store = DirectoryStore(sessionmaker(engine))
        if org_id:
            return await store.get(org_id)
        return await store.serving(country, kinds, limit=limit)
    finally:
        await engine.dispose()


def make_poster(settings: Settings, country: str, language: str, org_id: str | None,
                blank: bool, warn: Callable[[str], None]) -> bytes:
    """What `hotline poster` prints: settings and the directory in, a PDF out. `warn` is told
    what the poster leaves out and why."""
    from storage.migrate import current_revision, head_revision

    country = country.upper()
    if language not in SHIPPED:
        raise PosterError(f"--language must be one of {', '.join(SHIPPED)}, not {language!r}")
    if not emergency_lines(country):
        raise PosterError(
            f"no emergency numbers on file for {country!r}: a poster needs them. The countries "
            f"with numbers are {', '.join(sorted(directory().countries))} "
            "(flows/data/emergency.json, each with its sources)."
        )
    fonts = find_fonts()  # before anything slow: a missing font is the likeliest failure
    if not settings.twilio_from:
        warn("TWILIO_FROM is not set: the poster leaves the SMS number out")
    if not settings.telegram_bot_username:
        warn("TELEGRAM_BOT_USERNAME is not set: the poster leaves the Telegram bot and its QR "
             "code out")
    listings: list[Listing] = []
    if org_id or not blank:
        if asyncio.run(current_revision(settings.database_url)) != head_revision():
            raise PosterError("the database schema is not up to date: run `hotline db upgrade` "
                              "first")
        listings = asyncio.run(directory_organisations(settings.database_url, country, org_id))
    if org_id:
        listings = _in_country(listings, org_id, country, warn)
        if not any(listing.phones for listing in listings):
            warn(f"{listings[0].organisation} has no phone number in the directory")
    else:
        # A poster for the country lists the lines anyone there can call: a service of one
        # region (or with no phone on file) is for a poster made with its --org.
        listings = [listing for listing in listings if listing.phones and not listing.regions]
        if not listings and not blank:
            warn(f"the directory lists no organisation with a phone for all of {country}: the "
                 "space is left to write in")
    poster = Poster(
        locale=language, country=country, service_name=settings.organisation,
        sms_number=settings.twilio_from, telegram_bot=settings.telegram_bot_username,
        organisations=tuple(organisation_from(listing) for listing in listings),
    )
    return render(poster, fonts)


def _in_country(listings: list[Listing], org_id: str, country: str,
                warn: Callable[[str], None]) -> list[Listing]:
    """`--org`'s services in the poster's country; elsewhere only, each once, and said so."""
    if not listings:
        raise PosterError(f"no organisation or service {org_id!r} in the directory")
    here = [listing for listing in listings if listing.country == country]
    if here:
        return here
    elsewhere = sorted({listing.country for listing in listings if listing.country})
    warn(f"{listings[0].organisation} serves {', '.join(elsewhere) or 'no country'} by the "
         f"directory, not {country}: printed all the same")
    return list({listing.service_id: listing for listing in listings}.values())


def add_parser(commands: argparse._SubParsersAction) -> None:
    poster = commands.add_parser(
        "poster", help="a printable A4 poster and A6 card (one PDF) in one language")
    poster.add_argument("--country", required=True, help="where it hangs: ISO code, e.g. RU")
    poster.add_argument("--language", required=True, choices=SHIPPED)
    which = poster.add_mutually_exclusive_group()
    which.add_argument("--org", metavar="ID", help="the organisation or service (its HSDS id) "
                       "to print in the local organisations' space")
    which.add_argument("--blank", action="store_true", help="leave that space blank for an "
                       "NGO to write in (default: the directory's organisations in the country)")
    poster.add_argument("--out", required=True, type=Path, metavar="FILE.pdf")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """`hotline poster`; returns its exit code."""
    # What it leaves out is said below; INFO lines (migrations, fonts) would bury it.
    logging.getLogger().setLevel(logging.WARNING)

    def warn(message: str) -> None:
        print(f"hotline poster: {message}", file=sys.stderr)

    try:
        pdf = make_poster(settings, args.country, args.language, args.org, args.blank, warn)
    except PosterError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    args.out.write_bytes(pdf)
    print(f"{args.out}: page 1 the A4 poster, page 2 the A6 card")
    return 0
