"""Synthetic GAIA-format questions with expert traces, written by this project.

No GAIA text is used: entities are invented from syllables and every number comes from a
seeded generator, so the same seed gives the same file byte for byte. Several task
families, 1–6 steps, arguments that depend on the question; with the 17-tool registry
each question offers one search variant plus distractor tools, so the speculator has
to read the tool list rather than memorise a name.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from specdecode.records import ToolCall, TraceRecord, TraceStep

_SYL = [
    "var",
    "nol",
    "hel",
    "mir",
    "tas",
    "kor",
    "bel",
    "dun",
    "ost",
    "ran",
    "vel",
    "zor",
    "ath",
    "lin",
    "mor",
    "quel",
    "sef",
    "tiv",
    "cam",
    "dra",
    "esk",
    "fen",
    "gal",
    "ult",
]
_CITY_END = ["holm", "burg", "ford", "stad", "port", "vale", "mouth", "wick", "ara", "ino"]
_FIRST = [
    "Ada",
    "Bram",
    "Cleo",
    "Dario",
    "Elin",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kaia",
    "Lior",
    "Mira",
    "Nils",
    "Odile",
    "Pavel",
    "Rhea",
    "Soren",
    "Tilde",
    "Umar",
]
_JOBS = [
    "composer",
    "botanist",
    "novelist",
    "architect",
    "chess player",
    "cartographer",
    "physicist",
    "painter",
    "engineer",
    "poet",
]
_EVENTS = [
    "Festival of Lanterns",
    "Open Chess Congress",
    "Harbour Regatta",
    "Symposium on Tidal Energy",
    "Choir Olympiad",
    "Glass Arts Biennale",
]
# (from, to, factor, objects, how the size is said)
_UNITS = [
    ("miles", "kilometres", 1.609344, ["canal", "hiking trail", "pipeline"], "long"),
    ("feet", "metres", 0.3048, ["bridge", "runway", "sea wall", "tunnel"], "long"),
    ("inches", "centimetres", 2.54, ["banner", "scroll", "tapestry"], "long"),
    ("nautical miles", "kilometres", 1.852, ["ferry route", "regatta course"], "long"),
    ("pounds", "kilograms", 0.45359237, ["bell", "statue", "anchor"], "heavy"),
    ("gallons", "litres", 3.785411784, ["cistern", "fountain basin", "water tower"], "in volume"),
]
_INDICATORS = [
    ("GDP growth (annual %)", "NY.GDP.MKTP.KD.ZG"),
    ("inflation, consumer prices (annual %)", "FP.CPI.TOTL.ZG"),
    ("life expectancy at birth (years)", "SP.DYN.LE00.IN"),
    ("unemployment rate (%)", "SL.UEM.TOTL.ZS"),
]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_GOODS = ["umbrella", "lantern", "bicycle", "teapot", "kite", "compass"]
_SEARCH17 = ["web_search", "search_web", "search", "search_with_content"]

# Role → tool name in each registry. Families ask for roles; the registry decides names.
_ROLE_NAMES = {
    "tools4": {"search": "search", "wiki": "wikipedia", "calc": "calculator", "answer": "final_answer"},
    "tools17": {
        "wiki": "wiki.get_page",
        "calc": "calculate",
        "answer": "final_answer",
        "revisions": "wiki.get_revisions",
        "python": "python",
        "file": "file_read",
        "vision": "vision_analyze",
        "ocr": "vision_ocr",
        "browse": "web_browse",
        "worldbank": "finance.get_world_bank_data",
    },
}


def _word(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(_SYL) for _ in range(parts)).capitalize()


def _city(rng: random.Random) -> str:
    return _word(rng, rng.choice([1, 2])) + rng.choice(_CITY_END)


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {_word(rng, rng.choice([2, 3]))}"


def _num(x: float) -> str:
    """Numbers as an answer would write them: integers bare, others to 2 decimals."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


@dataclass
class _Builder:
    """Collects the steps of one trace; tool names come from the registry's roles."""

    rng: random.Random
    registry: str
    search_name: str
    steps: list[TraceStep] = field(default_factory=list)

    def tool(self, role: str) -> str:
        return self.search_name if role == "search" else _ROLE_NAMES[self.registry][role]

    def step(self, role: str, thought: str, observation: str | None, **arguments: Any) -> None:
        action = ToolCall(tool_name=self.tool(role), arguments=arguments)
        self.steps.append(TraceStep(thought=thought, action=action, observation=observation))

    def answer(self, value: str, thought: str = "I have everything I need.") -> str:
        self.step("answer", thought, None, answer=value)
        return value


Family = Callable[[_Builder], tuple[str, str]]  # returns (question, final answer)


def _birth_year(b: _Builder) -> tuple[str, str]:
    person, year, job, city = _person(b.rng), b.rng.randint(1801, 1990), b.rng.choice(_JOBS), _city(b.rng)
    b.step(
        "wiki",
        f"The Wikipedia page of {person} should give the birth year.",
        f"{person} (born {year} in {city}) is a {job}.",
        title=person,
    )
    return f"According to Wikipedia, in what year was the {job} {person} born?", b.answer(str(year))


def _unit_conversion(b: _Builder) -> tuple[str, str]:
    src, dst, factor, objects, size = b.rng.choice(_UNITS)
    obj, x = b.rng.choice(objects), round(b.rng.uniform(2, 900), 1)
    value = round(x * factor, 2)
    b.step(
        "calc", f"Multiply by the {src}-to-{dst} factor {factor}.", _num(value), expression=f"{x} * {factor}"
    )
    question = f"The {_city(b.rng)} {obj} is {x} {src} {size}. What is that in {dst}, to two decimals?"
    return question, b.answer(_num(value))


def _density(b: _Builder) -> tuple[str, str]:
    city, pop, area = _city(b.rng), b.rng.randint(20_000, 3_000_000), b.rng.randint(40, 2_000)
    b.step(
        "search",
        f"First I need the population of {city}.",
        f"{city} had {pop:,} inhabitants at the last census.",
        query=f"{city} population",
    )
    b.step("search", f"Now the area of {city}.", f"{city} covers {area} km2.", query=f"{city} area km2")
    density = round(pop / area)
    b.step("calc", "Divide population by area.", _num(pop / area), expression=f"{pop} / {area}")
    question = (
        f"What is the population density of {city} in people per square kilometre, "
        "rounded to the nearest whole number?"
    )
    return question, b.answer(str(density))


def _age_gap(b: _Builder) -> tuple[str, str]:
    p1, p2 = _person(b.rng), _person(b.rng)
    y1, y2 = b.rng.randint(1850, 1950), b.rng.randint(1951, 2000)
    b.step("wiki", f"Look up {p1}'s birth year.", f"{p1} (born {y1}) is a {b.rng.choice(_JOBS)}.", title=p1)
    b.step("wiki", f"Now {p2}'s birth year.", f"{p2} (born {y2}) is a {b.rng.choice(_JOBS)}.", title=p2)
    b.step("calc", "Subtract the birth years.", str(y2 - y1), expression=f"{y2} - {y1}")
    question = f"Using their Wikipedia pages, how many years older is {p1} than {p2}?"
    return question, b.answer(str(y2 - y1))


def _rivers(b: _Builder) -> tuple[str, str]:
    names = [f"{_word(b.rng)} River" for _ in range(b.rng.choice([3, 4]))]
    lengths = b.rng.sample(range(80, 3_000), len(names))
    for name, km in zip(names, lengths):
        b.step("wiki", f"Get the length of the {name}.", f"The {name} is {km} km long.", title=name)
    longest = names[lengths.index(max(lengths))]
    b.step(
        "calc",
        "Longest minus shortest.",
        str(max(lengths) - min(lengths)),
        expression=f"{max(lengths)} - {min(lengths)}",
    )
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    question = (
        f"Of the {listed}, which is the longest, and by how many kilometres does it "
        "exceed the shortest? Answer as 'name, km'."
    )
    return question, b.answer(f"{longest}, {max(lengths) - min(lengths)}")


def _host_city_mayor(b: _Builder) -> tuple[str, str]:
    event, year, city, mayor = b.rng.choice(_EVENTS), b.rng.randint(1990, 2023), _city(b.rng), _person(b.rng)
    b.step(
        "search",
        f"Find which city hosted the {year} {event}.",
        f"The {year} {event} was held in {city}.",
        query=f"{year} {event} host city",
    )
    b.step(
        "wiki",
        f"{city}'s Wikipedia page names the mayor.",
        f"{city} is governed by mayor {mayor}.",
        title=city,
    )
    question = f"Who is the mayor of the city that hosted the {year} {event}, per its Wikipedia page?"
    return question, b.answer(mayor)


def _author_age(b: _Builder) -> tuple[str, str]:
    book = f"The {_word(b.rng)} {b.rng.choice(['Letters', 'Garden', 'Compass', 'Winter', 'Archive'])}"
    author, born = _person(b.rng), b.rng.randint(1850, 1980)
    published = born + b.rng.randint(22, 70)
    b.step("search", f"Who wrote '{book}'?", f"'{book}' is a novel by {author}.", query=f"author of {book}")
    b.step("wiki", f"Birth year of {author}.", f"{author} (born {born}) is a novelist.", title=author)
    b.step(
        "search",
        f"When was '{book}' first published?",
        f"'{book}' was first published in {published}.",
        query=f"{book} first published",
    )
    b.step(
        "calc",
        "Publication year minus birth year.",
        str(published - born),
        expression=f"{published} - {born}",
    )
    question = f"How old was the author of the novel '{book}' when it was first published?"
    return question, b.answer(str(published - born))


def _world_bank(b: _Builder) -> tuple[str, str]:
    country, (label, code) = _word(b.rng, 2) + "ia", b.rng.choice(_INDICATORS)
    years = sorted(b.rng.sample(range(2000, 2023), b.rng.choice([2, 3])))
    values = [round(b.rng.uniform(-3, 80), 2) for _ in years]
    for year, value in zip(years, values):
        b.step(
            "worldbank",
            f"Fetch {label} for {country} in {year}.",
            f"{value}",
            country=country,
            indicator=code,
            year=year,
        )
    if len(years) == 2:
        result = round(values[1] - values[0], 2)
        b.step(
            "calc", "Difference between the two years.", _num(result), expression=f"{values[1]} - {values[0]}"
        )
        question = (
            f"By how much did {country}'s {label} change between {years[0]} and {years[1]}, "
            "according to the World Bank? Two decimals."
        )
    else:
        result = round(sum(values) / 3, 2)
        b.step(
            "calc",
            "Average of the three years.",
            _num(result),
            expression=f"({values[0]} + {values[1]} + {values[2]}) / 3",
        )
        question = (
            f"What was the average of {country}'s {label} in {years[0]}, {years[1]} and "
            f"{years[2]}, according to the World Bank? Two decimals."
        )
    return question, b.answer(_num(result))


def _spreadsheet(b: _Builder) -> tuple[str, str]:
    good, fname = b.rng.choice(_GOODS), f"{_word(b.rng).lower()}_sales.xlsx"
    m1, m2 = b.rng.sample(_MONTHS, 2)
    sales = {m: b.rng.randint(10, 999) for m in _MONTHS}
    b.step(
        "file",
        f"Open {fname}.",
        "month,units\n" + "\n".join(f"{m},{v}" for m, v in sales.items()),
        path=fname,
    )
    total = sales[m1] + sales[m2]
    b.step(
        "python",
        "Sum the two months with pandas.",
        str(total),
        code=f"import pandas as pd\ndf = pd.read_excel('{fname}')\n"
        f"print(df[df.month.isin(['{m1}', '{m2}'])].units.sum())",
    )
    question = (
        f"The attached file {fname} lists monthly {good} sales. How many units were sold "
        f"in {m1} and {m2} together?"
    )
    return question, b.answer(str(total))


def _image_sign(b: _Builder) -> tuple[str, str]:
    city, street, district = _city(b.rng), f"{_word(b.rng)} Street", _word(b.rng)
    fname = f"{_word(b.rng).lower()}.jpg"
    url = f"https://{city.lower()}.example.org/streets/{street.split()[0].lower()}"
    b.step("ocr", "Read the text on the sign.", f"Sign reads: '{street}'", image_path=fname)
    b.step("search", f"Find {street} in {city}.", f"{url} - {street}, {city}", query=f"{street} {city}")
    b.step("browse", "Open the city's street page.", f"{street} lies in the {district} district.", url=url)
    question = f"The attached photo {fname} shows a street sign in {city}. Which district is the street in?"
    return question, b.answer(district)


def _image_count(b: _Builder) -> tuple[str, str]:
    fname = f"{_word(b.rng).lower()}.png"
    thing, n = b.rng.choice(["boats", "birds", "chairs", "lamps"]), b.rng.randint(2, 40)
    q = f"How many {thing} are in the picture?"
    b.step(
        "vision", "Ask the vision model to count.", f"There are {n} {thing}.", image_path=fname, question=q
    )
    return f"The attached image {fname} shows a market square. {q}", b.answer(str(n))


def _revisions(b: _Builder) -> tuple[str, str]:
    title = _city(b.rng)
    start_y = b.rng.randint(2005, 2020)
    start, end = f"{start_y}-01-01", f"{start_y + b.rng.randint(1, 3)}-12-31"
    n = b.rng.randint(3, 250)
    b.step(
        "revisions",
        f"List the revisions of '{title}' in the range.",
        f"{n} revisions returned.",
        title=title,
        start=start,
        end=end,
    )
    b.step("python", "Count them.", str(n), code=f"print(len(revisions))  # {title} {start}..{end}")
    question = f"How many edits did the Wikipedia page '{title}' receive between {start} and {end}?"
    return question, b.answer(str(n))


FAMILIES: dict[str, list[Family]] = {
    "tools4": [_birth_year, _unit_conversion, _density, _age_gap, _rivers, _host_city_mayor, _author_age],
    "tools17": [
        _birth_year,
        _unit_conversion,
        _density,
        _age_gap,
        _rivers,
        _host_city_mayor,
        _author_age,
        _world_bank,
        _spreadsheet,
        _image_sign,
        _image_count,
        _revisions,
    ],
}


def level_for(steps: int) -> int:
    """GAIA-like difficulty from the number of steps: ≤2 → 1, 3–4 → 2, ≥5 → 3."""
    return 1 if steps <= 2 else 2 if steps <= 4 else 3


def _offered_tools(b: _Builder, registry_names: list[str]) -> list[str]:
    used = {s.action.tool_name for s in b.steps}
    others = [n for n in registry_names if n not in used and n not in _SEARCH17]
    distractors = set(b.rng.sample(others, b.rng.randint(3, 6)))
    return [n for n in registry_names if n in used or n in distractors]


def synthesize(n: int, seed: int = 0, registry: str = "tools4") -> list[TraceRecord]:
    """``n`` reproducible trace records for the ``tools4`` or ``tools17`` registry."""
    if registry not in FAMILIES:
        raise ValueError(f"synth supports registries {sorted(FAMILIES)}, not {registry!r}")
    from specdecode.registry import load_registry

    names = load_registry(registry).names
    rng = random.Random(f"specdecode-synth:{registry}:{seed}")
    records: list[TraceRecord] = []
    seen: set[str] = set()
    while len(records) < n:
        family = rng.choice(FAMILIES[registry])
        search = "search" if registry == "tools4" else rng.choice(_SEARCH17)
        builder = _Builder(rng=rng, registry=registry, search_name=search)
        question, answer = family(builder)
        if question in seen:  # rare collisions of invented names: draw again
            continue
        seen.add(question)
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        records.append(
            TraceRecord(
                id=task_id,
                question=question,
                level=level_for(len(builder.steps)),
                trace=builder.steps,
                final_answer=answer,
                tools=_offered_tools(builder, names) if registry == "tools17" else None,
                family=family.__name__.lstrip("_"),
            )
        )
    return records
