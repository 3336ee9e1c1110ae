"""Posters and cards, read back as a person and a phone would: the text extracted from the
PDF, the pages rendered to images and their QR codes decoded."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import uuid
from functools import cache
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest
import zxingcpp
from fontTools.ttLib import TTFont
from PIL import Image

from bot.poster import (
    FONTS_TARGET,
    Organisation,
    Phone,
    Poster,
    PosterError,
    emergency_lines,
    find_fonts,
    make_poster,
    render,
)
from bot.settings import Settings, SettingsError
from flows import rights
from flows.i18n import SHIPPED, translator
from flows.standard import standard_registry
from storage.crypto import new_master_key
from storage.db import create_engine, sessionmaker
from storage.directory import import_paths
from storage.hsds.hotline import TERM_IDS, term
from tests.conftest import TEST_KEY

HOTLINE = str(Path(sys.executable).with_name("hotline"))
BOT = "hotline_help_bot"
SMS = "+15005550006"
# Each language on a poster in a country where its speakers are (and every country once at
# least that has its own child or women's line, so long numbers are checked too).
COUNTRY = {"en": "US", "ru": "RU", "uk": "PL", "es": "ES", "uz": "RU", "tg": "RU", "ky": "KZ",
           "ar": "AE"}
SCRIPT = {
    "ar": re.compile(r"[\u0600-\u06ff]"),
    "ru": re.compile(r"[а-яё]", re.I),
    "uk": re.compile(r"[а-яіїєґ]", re.I),
    "tg": re.compile(r"[ҳӣӯҷқғ]", re.I),  # letters only Tajik has
    "ky": re.compile(r"[а-яңөү]", re.I),
    "es": re.compile(r"[a-zñáéíóú]", re.I),
    "uz": re.compile(r"[a-zʻ‘]", re.I),
    "en": re.compile(r"[a-z]", re.I),
}
ISOLATES = re.compile("[\u2066-\u2069]")
SISTERS = Organisation("Центр «Сёстры»",
                       (Phone("8 499 901 02 01"), Phone("+7 903 555 01 02", sms=True)),
                       open_24_7=True, languages=("ru", "en"))


@cache
def pdf_of(locale: str, country: str, telegram: bool = True, organisations: bool = False,
           ) -> bytes:
    return render(Poster(locale, country, "Test NGO", SMS, BOT if telegram else None,
                         (SISTERS,) if organisations else ()))


def pages_text(pdf: bytes) -> list[str]:
    """What a reader copies from each page; the invisible bidi isolates taken out."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [ISOLATES.sub("", page.extract_text()) for page in reader.pages]


def pages_image(pdf: bytes, dpi: int = 150) -> list[Image.Image]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [page.render(scale=dpi / 72).to_pil() for page in document]
    finally:
        document.close()


def qr_codes(image: Image.Image) -> list[str]:
    return [code.text for code in zxingcpp.read_barcodes(image)]


@pytest.mark.parametrize("locale", SHIPPED)
def test_every_language_has_the_countrys_emergency_numbers_in_its_script(locale: str) -> None:
    country = COUNTRY[locale]
    poster, card = pages_text(pdf_of(locale, country))
    for number, _ in emergency_lines(country):
        assert number in poster and number in card, (number, locale)
    assert SMS in poster and SMS in card
    assert "@" + BOT in poster and "@" + BOT in card
    assert SCRIPT[locale].search(poster) and SCRIPT[locale].search(card)
    if locale != "ar":
        assert not SCRIPT["ar"].search(card)  # the Arabic of the language list is on A4 only


@pytest.mark.parametrize("locale", SHIPPED)
def test_qr_codes_open_the_bot_in_the_posters_language(locale: str) -> None:
    link = f"https://t.me/{BOT}?start={locale}-rights"
    for page in pages_image(pdf_of(locale, COUNTRY[locale])):
        assert qr_codes(page) == [link]


def test_the_pdf_is_an_a4_poster_and_an_a6_card() -> None:
    pages = pypdf.PdfReader(io.BytesIO(pdf_of("ru", "RU"))).pages
    sizes = [(round(float(p.mediabox.width) * 25.4 / 72), round(float(p.mediabox.height) * 25.4
                                                                / 72)) for p in pages]
    assert sizes == [(210, 297), (105, 148)]


def test_arabic_letters_are_joined() -> None:
    """Shaped Arabic uses each letter's initial, medial and final forms (Unicode's
    presentation forms name those glyphs in Noto); unshaped text would only use the
    isolated letters of U+0600-06FF."""
    reader = pypdf.PdfReader(io.BytesIO(pdf_of("ar", "AE")))
    joined = set()
    for font in reader.pages[0]["/Resources"]["/Font"].values():
        font = font.get_object()
        if "Arabic" not in font["/BaseFont"]:
            continue
        descriptor = font["/DescendantFonts"][0].get_object()["/FontDescriptor"]
        program = TTFont(io.BytesIO(descriptor["/FontFile2"].get_object().get_data()))
        joined |= {g for g in program.getGlyphOrder() if re.fullmatch(r"uniFE[7-F][0-9A-F]", g)}
    assert len(joined) >= 10, joined


def char_boxes(pdf: bytes, needle: str, letters: bool = True,
               ) -> tuple[tuple[float, float, float, float], list]:
    """The box of `needle` on page 1, and the characters (letters only, or all) on its line
    with their boxes."""
    document = pdfium.PdfDocument(pdf)
    try:
        text = document[0].get_textpage()
        found = text.search(needle).get_next()
        assert found, needle
        box = text.get_charbox(found[0])
        line = [(text.get_text_range(i, 1), text.get_charbox(i))
                for i in range(text.count_chars())
                if abs(text.get_charbox(i)[1] - box[1]) < 1.5
                and (text.get_text_range(i, 1).isalpha() or not letters)]
        return box, line
    finally:
        document.close()


@pytest.mark.parametrize(("locale", "letters"), [("ar", SCRIPT["ar"]), ("ru", SCRIPT["ru"])])
def test_arabic_lines_start_on_the_right(locale: str, letters: re.Pattern[str]) -> None:
    """The police number 102 and its name on one line: the number first in reading order,
    so right of the name in Arabic and left of it in Russian."""
    number, line = char_boxes(pdf_of(locale, "RU"), "102")
    name = [box for char, box in line if letters.match(char)]
    assert name
    if locale == "ar":
        assert max(box[2] for box in name) < number[0]
    else:
        assert min(box[0] for box in name) > number[2]


def visual_line(pdf: bytes, needle: str) -> str:
    """Page 1's line holding `needle`, its characters in the order they are drawn from left
    to right (text extraction has its own ideas about bidi order)."""
    _, line = char_boxes(pdf, needle, letters=False)
    return "".join(char for char, _ in sorted(line, key=lambda item: item[1][0]))


def test_numbers_stay_left_to_right_inside_arabic() -> None:
    poster, card = pages_text(pdf_of("ar", "RU"))
    for text in (poster, card):
        assert "8 800 2000 122" in text and "122 2000 800 8" not in text
    drawn = visual_line(pdf_of("ar", "RU"), "2000")
    assert "8 800 2000 122" in drawn, drawn
    assert re.search(r"[\u0600-\u06ff]\s*8 800 2000 122", drawn), drawn  # its name on its left


def test_without_organisations_the_space_is_left_to_write_in() -> None:
    for page in pages_text(pdf_of("en", "US")):
        assert "Local organisations" in page
        assert "Local organisation:" in page and "Phone:" in page


def test_organisations_fill_the_space() -> None:
    for page in pages_text(pdf_of("uz", "RU", organisations=True)):
        assert "Центр «Сёстры»" in page and "8 499 901 02 01" in page
        assert "+7 903 555 01 02" in page
        assert "Local organisation:" not in page


def test_without_a_bot_username_the_telegram_part_is_left_out() -> None:
    pdf = pdf_of("ky", "KZ", telegram=False)
    for text, image in zip(pages_text(pdf), pages_image(pdf), strict=True):
        assert "Telegram" not in text and "t.me" not in text and SMS in text
        assert qr_codes(image) == []


def test_missing_fonts_name_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(PosterError, match=re.escape(FONTS_TARGET)):
        find_fonts([tmp_path])
    assert find_fonts()  # installed by `make fonts`, which `make test` runs


def test_the_bot_username_setting() -> None:
    env = {"DATABASE_URL": "sqlite:///:memory:", "HOTLINE_SECRET_KEY": new_master_key()}
    assert Settings.from_env({**env, "TELEGRAM_BOT_USERNAME": "@Help_Line_bot"}
                             ).telegram_bot_username == "Help_Line_bot"
    assert Settings.from_env(env).telegram_bot_username is None
    for wrong in ("hotline", "hot line_bot", "bot", "a" * 30 + "_bot"):
        with pytest.raises(SettingsError, match="TELEGRAM_BOT_USERNAME"):
            Settings.from_env({**env, "TELEGRAM_BOT_USERNAME": wrong})


def settings(tmp_path: Path, **values: object) -> Settings:
    values.setdefault("database_url", f"sqlite:///{tmp_path / 'none.db'}")
    return Settings(secret_key=TEST_KEY, data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_what_the_poster_leaves_out_is_said(tmp_path: Path) -> None:
    told: list[str] = []
    pdf = make_poster(settings(tmp_path), "tj", "tg", None, blank=True, warn=told.append)
    assert any("TWILIO_FROM" in line for line in told)
    assert any("TELEGRAM_BOT_USERNAME" in line for line in told)
    poster, _ = pages_text(pdf)
    assert "112" in poster and "102" in poster  # Tajikistan's


def test_a_country_without_emergency_numbers_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PosterError, match="no emergency numbers on file for 'AQ'"):
        make_poster(settings(tmp_path), "AQ", "en", None, blank=True, warn=print)


# --- with the directory ----------------------------------------------------------------------

def hsds_organisation(name: str, number: str, country: str, kind: str = "trafficking",
                      region: str | None = None) -> tuple[dict, str]:
    """A small HSDS 3.0 organization with one service and its phone in `country` (or only in
    one `region` of it); and the service's id."""
    def uid() -> str:
        return str(uuid.uuid4())

    def attribute(code: str, entity: str, link: str, value: str) -> dict:
        return {"id": uid(), "taxonomy_term_id": TERM_IDS[code], "taxonomy_term": term(code),
                "link_entity": entity, "link_id": link, "value": value}

    org, service, area = uid(), uid(), uid()
    return {
        "id": org, "name": name, "description": "A test organisation",
        "services": [{
            "id": service, "organization_id": org, "name": "Hotline", "status": "active",
            "phones": [{"id": uid(), "service_id": service, "number": number, "type": "voice"}],
            "service_areas": [{"id": area, "service_id": service, "name": country,
                               "attributes": [
                                   attribute("country", "service_area", area, country),
                                   *([attribute("region", "service_area", area, region)]
                                     if region else []),
                               ]}],
            "attributes": [attribute("case_kind", "service", service, kind),
                           attribute("open_24_7", "service", service, "true")],
        }],
    }, service


def import_directory(database_url: str, tmp_path: Path, *organisations: dict) -> None:
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(list(organisations), ensure_ascii=False), encoding="utf-8")

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            report = await import_paths(sessionmaker(engine), [path])
            assert report.ok, report.rejected
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_hotline_poster_with_org_prints_that_organisation(database_url: str, tmp_path: Path,
                                                          ) -> None:
    ours, service = hsds_organisation("Tayanch markazi", "+7 495 555 01 99", "RU")
    other, _ = hsds_organisation("Another NGO", "+7 495 555 02 88", "RU")
    import_directory(database_url, tmp_path, ours, other)
    out = tmp_path / "poster.pdf"
    env = {**os.environ, "DATABASE_URL": database_url, "HOTLINE_SECRET_KEY": new_master_key(),
           "DATA_DIR": str(tmp_path / "var"), "TELEGRAM_BOT_USERNAME": BOT}
    for name in ("TWILIO_FROM", "TWILIO_ACCOUNT_SID", "TWILIO_MESSAGING_SERVICE_SID"):
        env.pop(name, None)
    done = subprocess.run([HOTLINE, "poster", "--country", "ru", "--language", "uz", "--org",
                           service, "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "TWILIO_FROM is not set" in done.stderr and "TELEGRAM" not in done.stderr
    pdf = out.read_bytes()
    for text, image in zip(pages_text(pdf), pages_image(pdf), strict=True):
        assert "Tayanch markazi" in text and "+7 495 555 01 99" in text
        assert "Another NGO" not in text and "Local organisation:" not in text
        assert "8 800 2000 122" in text  # Russia's children's line, from emergency.json
        assert qr_codes(image) == [f"https://t.me/{BOT}?start=uz-rights"]

    wrong = subprocess.run([HOTLINE, "poster", "--country", "RU", "--language", "uz", "--org",
                            str(uuid.uuid4()), "--out", str(tmp_path / "no.pdf")], env=env,
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "in the directory" in wrong.stderr
    assert not (tmp_path / "no.pdf").exists()


def test_without_org_the_directorys_organisations_in_the_country(database_url: str,
                                                                  tmp_path: Path) -> None:
    here, _ = hsds_organisation("Kyrgyz Legal Aid", "+996 312 55 55 55", "KG", "legal_aid")
    there, _ = hsds_organisation("Kazakh Line", "+7 727 555 55 55", "KZ")
    local, local_id = hsds_organisation("Bishkek Shelter", "+996 312 66 66 66", "KG",
                                        "domestic_violence", region="KG-GB")
    import_directory(database_url, tmp_path, here, there, local)
    told: list[str] = []
    config = settings(tmp_path, database_url=database_url, telegram_bot_username=BOT)
    poster, card = pages_text(make_poster(config, "KG", "ky", None, False, told.append))
    assert "Kyrgyz Legal Aid" in poster and "+996 312 55 55 55" in poster
    assert "Kazakh Line" not in poster
    assert "Bishkek Shelter" not in poster  # one region's: for a poster made with its --org
    regional, _ = pages_text(make_poster(config, "KG", "ky", local_id, False, told.append))
    assert "Bishkek Shelter" in regional and "Kyrgyz Legal Aid" not in regional
    assert "Kyrgyz Legal Aid" in card
    blank, _ = pages_text(make_poster(config, "KG", "ky", None, True, told.append))
    write_in = "Local organisation:"
    assert "Kyrgyz Legal Aid" not in blank and translator("ky")(write_in) in blank
    empty, _ = pages_text(make_poster(config, "UZ", "uz", None, False, told.append))
    assert translator("uz")(write_in) in empty
    assert any("no organisation with a phone for all of UZ" in line for line in told)


def test_the_bot_understands_the_posters_link() -> None:
    """The payload after ?start= opens the bot in the poster's language on the rights menu."""
    registry = standard_registry()
    for locale in SHIPPED:
        link_url = Poster(locale, "RU", "Test NGO", telegram_bot=BOT).deep_link
        assert link_url == f"https://t.me/{BOT}?start={locale}-rights"
        payload = link_url.split("start=")[1]
        link = registry.deep_link(payload)
        assert (link.locale, link.target) == (locale, rights.on_rights)
