"""The sources file: which feeds, sitemaps and listing pages to crawl, validated with located
errors (``file:line:col: message``, all at once) like every other YAML file Lookout reads; and
the source kinds (``SourceKind``), one spider each. A listing's ``follow`` selector is compiled
here (a broken one is an error of the file, not a traceback at crawl time) and ``lang`` must be
an ISO 639-1 code (``english`` gets "did you mean 'en'?")."""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from cssselect import SelectorError
from parsel.csstranslator import css2xpath
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap

from core.durations import Duration, parse_duration
from core.located import ErrorCollector, load_yaml, node_location, pydantic_errors

if TYPE_CHECKING:
    from pathlib import Path

_NAME = re.compile(r"^[a-z0-9-]+$")
# What a source's index is, named by the key that gives its URL; one spider each (crawler.spiders).
SourceKind = Literal["feed", "sitemap", "listing"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)

_LANGUAGES = (  # ISO 639-1: the 184 two-letter codes (sh included) and their English names
    "aa Afar|ab Abkhazian|ae Avestan|af Afrikaans|ak Akan|am Amharic|an Aragonese|ar Arabic|as Assamese|"
    "av Avaric|ay Aymara|az Azerbaijani|ba Bashkir|be Belarusian|bg Bulgarian|bi Bislama|bm Bambara|"
    "bn Bengali|bo Tibetan|br Breton|bs Bosnian|ca Catalan|ce Chechen|ch Chamorro|co Corsican|cr Cree|"
    "cs Czech|cu Church Slavic|cv Chuvash|cy Welsh|da Danish|de German|dv Divehi|dz Dzongkha|ee Ewe|"
    "el Greek|en English|eo Esperanto|es Spanish|et Estonian|eu Basque|fa Persian|ff Fulah|fi Finnish|"
    "fj Fijian|fo Faroese|fr French|fy Western Frisian|ga Irish|gd Scottish Gaelic|gl Galician|"
    "gn Guarani|gu Gujarati|gv Manx|ha Hausa|he Hebrew|hi Hindi|ho Hiri Motu|hr Croatian|ht Haitian|"
    "hu Hungarian|hy Armenian|hz Herero|ia Interlingua|id Indonesian|ie Interlingue|ig Igbo|"
    "ii Sichuan Yi|ik Inupiaq|io Ido|is Icelandic|it Italian|iu Inuktitut|ja Japanese|jv Javanese|"
    "ka Georgian|kg Kongo|ki Kikuyu|kj Kuanyama|kk Kazakh|kl Kalaallisut|km Khmer|kn Kannada|ko Korean|"
    "kr Kanuri|ks Kashmiri|ku Kurdish|kv Komi|kw Cornish|ky Kyrgyz|la Latin|lb Luxembourgish|lg Ganda|"
    "li Limburgish|ln Lingala|lo Lao|lt Lithuanian|lu Luba-Katanga|lv Latvian|mg Malagasy|mh Marshallese|"
    "mi Maori|mk Macedonian|ml Malayalam|mn Mongolian|mr Marathi|ms Malay|mt Maltese|my Burmese|na Nauru|"
    "nb Norwegian Bokmal|nd North Ndebele|ne Nepali|ng Ndonga|nl Dutch|nn Norwegian Nynorsk|no Norwegian|"
    "nr South Ndebele|nv Navajo|ny Chichewa|oc Occitan|oj Ojibwe|om Oromo|or Odia|os Ossetian|pa Punjabi|"
    "pi Pali|pl Polish|ps Pashto|pt Portuguese|qu Quechua|rm Romansh|rn Kirundi|ro Romanian|ru Russian|"
    "rw Kinyarwanda|sa Sanskrit|sc Sardinian|sd Sindhi|se Northern Sami|sg Sango|sh Serbo-Croatian|"
    "si Sinhala|sk Slovak|sl Slovenian|sm Samoan|sn Shona|so Somali|sq Albanian|sr Serbian|ss Swati|"
    "st Southern Sotho|su Sundanese|sv Swedish|sw Swahili|ta Tamil|te Telugu|tg Tajik|th Thai|"
    "ti Tigrinya|tk Turkmen|tl Tagalog|tn Tswana|to Tonga|tr Turkish|ts Tsonga|tt Tatar|tw Twi|"
    "ty Tahitian|ug Uyghur|uk Ukrainian|ur Urdu|uz Uzbek|ve Venda|vi Vietnamese|vo Volapuk|wa Walloon|"
    "wo Wolof|xh Xhosa|yi Yiddish|yo Yoruba|za Zhuang|zh Chinese|zu Zulu"
)
LANGUAGE_NAMES: dict[str, str] = dict(part.split(" ", 1) for part in "".join(_LANGUAGES).split("|"))
LANGUAGE_CODES = frozenset(LANGUAGE_NAMES)
_CODE_OF_NAME = {name.lower(): code for code, name in LANGUAGE_NAMES.items()}


class Source(BaseModel):
    """One entry of the sources file: a name, exactly one index URL (its key is the kind) and
    how often to crawl it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    feed: str | None = None  # RSS 0.9x/1.0/2.0 or Atom
    sitemap: str | None = None  # news sitemap or sitemap index
    listing: str | None = None  # an HTML page linking articles
    follow: str | None = None  # CSS selector for article links (listing only)
    every: Duration
    lang: str | None = None  # a hint when pages do not declare their language: an ISO 639-1 code

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits and '-' only")
        return value

    @field_validator(*SOURCE_KINDS)
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("follow")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        problem = selector_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("lang")
    @classmethod
    def _lang(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().lower()
        if code not in LANGUAGE_CODES:
            raise ValueError(language_problem(value))
        return code

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        problems = structure_problems(self.model_dump())
        if problems:
            raise ValueError(problems[0][1])
        return self

    @property
    def kind(self) -> SourceKind:
        return "feed" if self.feed else "sitemap" if self.sitemap else "listing"

    @property
    def url(self) -> str:
        return self.feed or self.sitemap or self.listing or ""


def selector_problem(selector: str) -> str | None:
    """Why ``selector`` is no CSS selector Scrapy can use (parsel's dialect: ``::text`` and
    ``::attr(name)`` included), or None."""
    try:
        css2xpath(selector)
    except SelectorError as exc:
        return f"{selector!r} is not a valid CSS selector: {exc}"
    return None


def language_problem(value: str) -> str:
    """The message for a ``lang`` that is no ISO 639-1 code, with a suggestion when one is close."""
    message = f"{value!r} is not an ISO 639-1 language code (two letters, such as en, ar or tr)"
    guess = suggest_language(value)
    return f"{message}; did you mean '{guess}'?" if guess else message


def suggest_language(value: str) -> str | None:
    """The code ``value`` probably means: a language's name (``English``, ``arabc``), a tag with
    a region (``en-US``) or a three-letter code (``eng``)."""
    text = value.strip().lower()
    if text in _CODE_OF_NAME:
        return _CODE_OF_NAME[text]
    base = re.split(r"[-_ ]", text, maxsplit=1)[0]
    if base in LANGUAGE_CODES:
        return base
    if len(text) == 3 and text[:2] in LANGUAGE_CODES:
        return text[:2]
    close = difflib.get_close_matches(text, list(_CODE_OF_NAME), n=1, cutoff=0.8)
    return _CODE_OF_NAME[close[0]] if close else None


def structure_problems(item: dict[str, Any]) -> list[tuple[str | None, str]]:
    """Rules across fields, as (key to point at, message). Checked on the raw mapping too, so they
    are reported even when a field of the same source is also wrong (all errors at once)."""
    problems: list[tuple[str | None, str]] = []
    given = [k for k in SOURCE_KINDS if item.get(k)]
    if len(given) != 1:
        problems.append((
            given[1] if len(given) > 1 else None,
            "give exactly one of feed, sitemap, listing" + (f" (found {', '.join(given)})" if given else ""),
        ))
    if item.get("listing") and not item.get("follow"):
        problems.append(("listing", "a listing source needs 'follow': the CSS selector of its article links"))
    if item.get("follow") and not item.get("listing"):
        problems.append(("follow", "'follow' only applies to a listing source"))
    every = item.get("every")
    try:  # raw YAML holds text ("0m"); a bad spelling is reported by the field's own check
        every = parse_duration(every) if every is not None else None
    except (ValueError, TypeError, AttributeError):
        every = None
    if isinstance(every, timedelta) and every.total_seconds() <= 0:
        problems.append(("every", "'every' must be a positive duration"))
    return problems


def parse_sources(data: Any, origin: str) -> list[Source]:
    """Validate a list of source mappings (from a file, or ``sources:`` inline in the config)."""
    errors = ErrorCollector()
    if isinstance(data, CommentedMap) and "sources" in data:
        extra = [k for k in data if k != "sources"]
        for k in extra:
            errors.add(node_location(origin, data, k), f"unknown key '{k}'")
        data = data["sources"]
    if not isinstance(data, list):
        errors.add(node_location(origin, data), "expected a list of sources (sources: [...])")
        errors.raise_if_any()
    out: list[Source] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            errors.add(
                node_location(origin, data, i),
                "each source must be a mapping (name, feed|sitemap|listing, every)",
            )
            continue
        name = item.get("name")
        if isinstance(name, str) and name in seen:
            errors.add(
                node_location(origin, item, "name"),
                f"duplicate source name '{name}' (first used by source {seen[name] + 1})",
            )
        elif isinstance(name, str):
            seen[name] = i
        problems = structure_problems(item)
        for key, message in problems:
            errors.add(node_location(origin, item, key), f"source {i + 1}: {message}")
        try:
            source = Source.model_validate(dict(item))
        except ValidationError as exc:
            located = pydantic_errors(origin, item, exc)
            for raw, e in zip(exc.errors(), located, strict=True):
                if not raw.get("loc") and problems:
                    continue  # the cross-field problem, already reported at its key above
                errors.add(e.location, f"source {i + 1}: {e.message}")
            continue
        if not problems:
            out.append(source)
    errors.raise_if_any()
    return out


def load_sources(path: str | Path) -> list[Source]:
    data = load_yaml(path)
    if data is None:
        return []
    return parse_sources(data, str(path))


def select_sources(all_sources: list[Source], names: list[str]) -> list[Source]:
    """The named sources (all when none); an unknown name is an error listing the known ones."""
    if not names:
        return all_sources
    by_name = {s.name: s for s in all_sources}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(by_name) or 'none'}")
    return [by_name[n] for n in names]
