"""Generated corpora for measuring the redactor: street addresses (AU, NZ, UK and US
shapes), labelled names (upper case, short parts, bracketed, plural labels and lists),
labelled dates of birth in many formats, IBANs, and operational text that must come out
unchanged.

Why generated: hand-written lines test the examples someone thought of; drawing hundreds
from the shapes (unit or level, house number, street name, street type, directional,
suburb or city, state, postcode; every label and title before every kind of name) finds
the combinations nobody wrote down. The draw is seeded, so the test suite
(`tests/test_text_input.py`) and the benchmark (`bench/bench_redaction.py`) measure the
same lines, and a miss can be reproduced.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

SEED = 20261130

STREETS = [
    "Example", "George", "Pitt", "Queen", "King William", "St Kilda", "Collins", "Baker",
    "Main", "Elm", "Pennsylvania", "O'Connell", "Mount Eden", "Karangahape", "Fifth",
    "Wallaby", "Anzac", "Victoria", "Old South Head", "Martin Luther King Jr",
]  # fmt: skip
TYPES = [
    "St", "Street", "Rd", "Road", "Ave", "Avenue", "Dr", "Drive", "Ct", "Court", "Pl",
    "Place", "Cres", "Crescent", "Ln", "Lane", "Way", "Blvd", "Boulevard", "Hwy", "Highway",
    "Pde", "Parade", "Tce", "Terrace", "Cl", "Close", "Cct", "Circuit", "Esp", "Grove",
    "Square", "Parkway", "Mews", "Quay",
]  # fmt: skip
AU_PLACES = [
    ("Sydney", "NSW", "2000"), ("Parramatta", "NSW", "2150"), ("Melbourne", "VIC", "3000"),
    ("St Kilda", "VIC", "3182"), ("Brisbane City", "QLD", "4000"), ("Adelaide", "SA", "5000"),
    ("Perth", "WA", "6000"), ("Hobart", "TAS", "7000"), ("Darwin", "NT", "0800"),
    ("Canberra", "ACT", "2601"), ("Surry Hills", "NSW", "2010"),
]  # fmt: skip
NZ_PLACES = [
    ("Ponsonby", "Auckland", "1011"), ("Te Aro", "Wellington", "6011"),
    ("Riccarton", "Christchurch", "8011"), ("Auckland Central", "Auckland", "1010"),
]  # fmt: skip
UK_PLACES = [
    ("London", "SW1A 2AA"), ("London", "NW1 6XE"), ("Manchester", "M1 1AE"),
    ("Birmingham", "B33 8TH"), ("Glasgow", "G2 3BZ"), ("Cardiff", "CF10 1EP"),
    ("London", "EC1A 1BB"), ("Leeds", "LS1 4DY"),
]  # fmt: skip
US_PLACES = [
    ("Washington", "DC", "20500"), ("Springfield", "IL", "62704"), ("New York", "NY", "10118"),
    ("San Francisco", "CA", "94103"), ("Austin", "TX", "78701"), ("Seattle", "WA", "98101-1234"),
    ("Boston", "MA", "02108"),
]  # fmt: skip
UNITS = ["", "", "", "Unit 4/", "4/", "Level 3, ", "Flat 2, ", "Apt 5B, ", "Suite 210, "]
CONTEXTS = [
    "{}",
    "customer moved to {} last week",
    "reason: mail returned from {}",
    "address: {}",
    "ship the card to {}, then call",
    'reason="statement sent to {}"',
    "{} (postal)",
]

GIVEN = [
    "Jane", "John", "Mary", "Wei", "Priya", "Siobhán", "José", "Aroha", "Mohammed",
    "Chloé", "Lan", "Tom", "Nguyễn Văn", "Anna-Maria",
]  # fmt: skip
FAMILY = [
    "Citizen", "O'Brien", "McDonald", "Nguyen", "Smith-Jones", "Papadopoulos", "Ngata",
    "Kowalski", "Van Dyke", "D'Souza", "MacLeod", "Li", "An", "Ng", "Thi Le", "Smith-Jones",
]  # fmt: skip
TITLES = ["Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Mr.", "Dr."]
NAME_FORMS = [
    ("customer {first} {last} called about the delay", "{first} {last}"),
    ("Customer {first} {last} called", "{first} {last}"),
    ("name: {first} {last}", "{first} {last}"),
    ("Name: {first} {last}, loan pending", "{first} {last}"),
    ("borrower {first} {last}'s application", "{first} {last}"),
    ("the borrower: {first} {last}", "{first} {last}"),
    ("applicant: {title} {first} {last}", "{first} {last}"),
    ("applicant {first} {last} withdrew", "{first} {last}"),
    ("{title} {last} asked for a callback", "{last}"),
    ("spoke to {title} {first} {last} today", "{first} {last}"),
    ("customer name: {first} {last}", "{first} {last}"),
    ("full name: {lfirst} {llast}", "{lfirst} {llast}"),
    ('reason="customer {first} {last} complained"', "{first} {last}"),
    ("guarantor {first} {last}", "{first} {last}"),
    ("Applicant: {ufirst} {ulast}, loan pending", "{ufirst} {ulast}"),
    ("customer {ufirst} {ulast} called", "{ufirst} {ulast}"),
    ("{title} {ufirst} {ulast} asked for a callback", "{ufirst} {ulast}"),
    ("customer: {first} {last}", "{first} {last}"),
    ("customer <{first} {last}>", "{first} {last}"),
    ("customer &lt;{first} {last}&gt; wrote in", "{first} {last}"),
    ("applicant ({first} {last}) withdrew", "{first} {last}"),
    ("customer - {first} {last}", "{first} {last}"),
    ("customers {first} {last} and {first2} {last2}", "{first2} {last2}"),
    ("customer {first} {last} and {first2} {last2} called", "{first2} {last2}"),
    ("borrowers: {first} {last}, {first2} {last2} & {first3} {last3}", "{first3} {last3}"),
    ("Applicants {ufirst} {ulast} and {first2} {last2}", "{first2} {last2}"),
    ("full names: {first} {last} and {first2} {last2}", "{first2} {last2}"),
]


@dataclass(frozen=True)
class Sample:
    text: str
    kind: str
    value: str


def _au(rng: random.Random) -> str:
    place, state, postcode = rng.choice(AU_PLACES)
    sep = rng.choice([" ", ", "])
    return (
        f"{rng.choice(UNITS)}{rng.randint(1, 999)} {rng.choice(STREETS)} {rng.choice(TYPES)}"
        f"{sep}{place}{sep}{state} {postcode}"
    )


def _nz(rng: random.Random) -> str:
    suburb, city, postcode = rng.choice(NZ_PLACES)
    return (
        f"{rng.choice(UNITS)}{rng.randint(1, 999)} {rng.choice(STREETS)} {rng.choice(TYPES)},"
        f" {suburb}, {city} {postcode}"
    )


def _uk(rng: random.Random) -> str:
    town, postcode = rng.choice(UK_PLACES)
    number = f"{rng.randint(1, 300)}{rng.choice(['', '', 'A', 'B'])}"
    return (
        f"{rng.choice(UNITS)}{number} {rng.choice(STREETS)} {rng.choice(TYPES)}, {town} {postcode}"
    )


def _us(rng: random.Random) -> str:
    city, state, zipcode = rng.choice(US_PLACES)
    direction = rng.choice(["", "", " NW", " SE", " N"])
    return (
        f"{rng.choice(UNITS)}{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(TYPES)}"
        f"{direction}, {city}, {state} {zipcode}"
    )


SHAPES: dict[str, Callable[[random.Random], str]] = {"AU": _au, "NZ": _nz, "UK": _uk, "US": _us}


def addresses(per_shape: int = 60, seed: int = SEED) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for shape in SHAPES.values():
        for _ in range(per_shape):
            value = shape(rng)
            out.append(Sample(rng.choice(CONTEXTS).format(value), "ADDRESS", value))
    return out


def names(count: int = 420, seed: int = SEED + 1) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        form, shown = NAME_FORMS[i % len(NAME_FORMS)]
        first, last, title = rng.choice(GIVEN), rng.choice(FAMILY), rng.choice(TITLES)
        parts = {
            "first": first,
            "last": last,
            "title": title,
            "lfirst": first.lower(),
            "llast": last.lower(),
            "ufirst": first.upper(),
            "ulast": last.upper(),
            "first2": rng.choice(GIVEN),
            "last2": rng.choice(FAMILY),
            "first3": rng.choice(GIVEN),
            "last3": rng.choice(FAMILY),
        }
        out.append(Sample(form.format(**parts), "NAME", shown.format(**parts)))
    return out


DOB_LABELS = ["born", "DOB:", "dob", "date of birth", "Date of Birth:", "b.", "born on", "d.o.b."]
DOB_CONTEXTS = ["{}", "applicant {} per ID check", 'reason="{} does not match"', "{}; verify"]
MONTH_NAMES = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip
DOB_FORMATS: list[Callable[[int, int, int], str]] = [
    lambda y, m, d: f"{d:02d}-{MONTH_NAMES[m - 1][:3]}-{y}",  # 04-Jun-1980
    lambda y, m, d: f"{d} {MONTH_NAMES[m - 1][:3]} {y % 100:02d}",  # 4 Jun 80
    lambda y, m, d: f"{d} {MONTH_NAMES[m - 1]} {y}",  # 4 June 1980
    lambda y, m, d: f"{y}-{m:02d}-{d:02d}",  # 1980-06-04
    lambda y, m, d: f"{d:02d}/{m:02d}/{y}",  # 04/06/1980
    lambda y, m, d: f"{MONTH_NAMES[m - 1]} {d}, {y}",  # June 4, 1980
    lambda y, m, d: f"{d}.{MONTH_NAMES[m - 1][:3]}.{y % 100:02d}",  # 4.Jun.80
    lambda y, m, d: f"{d}/{MONTH_NAMES[m - 1][:3]}/{y}",  # 4/Jun/1980
]


def dates_of_birth(count: int = 240, seed: int = SEED + 3) -> list[Sample]:
    """Labelled dates of birth, every label before every format (years 1940–1999, so a
    two-digit year is never read as 20xx)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        y, m, d = rng.randint(1940, 1999), rng.randint(1, 12), rng.randint(1, 28)
        value = DOB_FORMATS[i % len(DOB_FORMATS)](y, m, d)
        label = DOB_LABELS[(i // len(DOB_FORMATS)) % len(DOB_LABELS)]
        out.append(Sample(rng.choice(DOB_CONTEXTS).format(f"{label} {value}"), "DOB", value))
    return out


# country, BBAN shape: `A` a capital letter, `9` a digit, `X` either
IBAN_SHAPES = [
    ("GB", "AAAA99999999999999"), ("DE", "999999999999999999"), ("FR", "9999999999XXXXXXXXXXX99"),
    ("NL", "AAAA9999999999"), ("IE", "AAAA99999999999999"), ("ES", "99999999999999999999"),
    ("IT", "A9999999999XXXXXXXXXXXX"), ("BE", "999999999999"), ("CH", "99999XXXXXXXXXXXX"),
]  # fmt: skip
IBAN_CONTEXTS = ["IBAN {}", "iban: {}", "refund to {} today", 'reason="pay {} not the card"']


def _iban(rng: random.Random, country: str, shape: str) -> str:
    alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pick = {"A": alnum[:26], "9": alnum[26:], "X": alnum}
    bban = "".join(rng.choice(pick[c]) for c in shape)
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def ibans(count: int = 216, seed: int = SEED + 4) -> list[Sample]:
    """IBANs (mod-97 valid), compact or in groups of four, labelled or not."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        iban = _iban(rng, *IBAN_SHAPES[i % len(IBAN_SHAPES)])
        if i % 2:
            iban = " ".join(iban[j : j + 4] for j in range(0, len(iban), 4))
        out.append(Sample(rng.choice(IBAN_CONTEXTS).format(iban), "BANK_ACCOUNT", iban))
    return out


def pii_samples() -> list[Sample]:
    """Every generated PII line: addresses, names, dates of birth, IBANs."""
    return addresses() + names() + dates_of_birth() + ibans()


SLUGS = ["loan-assessor", "loan-assessor-stg", "fraud-screen", "doc-extract-dev"]
VERSIONS = ["gemma-3-1b-it@1.2.1", "gemma-3-1b-it@1.3.0-rc1", "gemma-3-4b-it@2.0.0"]
OPS_REASONS = [
    "fix tokenizer bug (CHG-1234)",
    "P95 above 2 s since 14:05",
    "canary healthy for 1 h",
    "error rate 1.6% > 1% for 5 min",
    "p95 2000 ms at 2026-11-27 09:14 AEDT",
    "roll to 50% at 2026-12-01 11:00",
    "drift 0.12 on feature income_band",
    "rollback: 3 breaches in a row on CAN-4",
    "replicas 2 -> 6 for the month-end batch",
    "INC-42 mitigation, see runbook step 3",
    "approved in CHG-12 by U0BOB",
    "Q4 release 2026.11 per model-risk sign-off",
]


def operational(count: int = 300, seed: int = SEED + 2) -> list[str]:
    """Command texts and messages with no PII: slugs, versions, change ids, figures,
    times, options. Redaction must leave every one exactly as it is."""
    rng = random.Random(seed)
    fixed = [
        '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"',
        "/promote loan-assessor to=50",
        "/promote loan-assessor-stg steps=10,25,50,100",
        '/rollback loan-assessor reason="P95 above 2 s since 14:05"',
        "/aiops audit loan-assessor since=7d",
        "/aiops audit change=CHG-12 limit=50",
        "/aiops approve CHG-12",
        '/deploy loan-assessor gemma-3-1b-it@1.2.1 at="2026-12-01 11:00" ticket=CHG-1234',
        "/aiops digest morning prod",
        "canary=10 to=100 limit=500 since=24h",
        "2026-11-27T09:14:05.123456+00:00 U0BOB approve prod loan-assessor CHG-12 ok",
        "Step 2 of 4 Passed; Canary CAN-3 Check 4 at 25%",
        "12 Endpoints Healthy, 2 Breaching; 3 Changes Waiting",
        "Approve", "Rollback", "Status: Approve", "Rollback Completed. Status Healthy",
        "Customer Impact: none", "Customers Affected: 0", "Sydney NSW", "Sydney NSW 2000",
        "customer-facing - Sydney NSW", "Name - Status", "customers (prod) and staging",
        "CAN-3 and CHG-12 at 2026-12-01 11:00", "/aiops audit since=7d at=2026-12-01T11:00",
        "P95 2000 ms; canary=10; Promote loan-assessor-stg to 50%",
        "Customer SLA Breach on loan-assessor", "build b. 2026-12-01 11:00 ok",
        "trace AB12CDEF3456789012345678 span 0042",
    ]  # fmt: skip
    out = list(fixed)
    templates: list[Callable[[], str]] = [
        lambda: (
            f"/deploy {rng.choice(SLUGS)} {rng.choice(VERSIONS)} canary={rng.randint(1, 100)}"
            f' reason="{rng.choice(OPS_REASONS)}"'
        ),
        lambda: (
            f"/promote {rng.choice(SLUGS)} to={rng.choice([25, 50, 100])}"
            f' reason="{rng.choice(OPS_REASONS)}"'
        ),
        lambda: f"/aiops reject CHG-{rng.randint(1, 9999)} reason='{rng.choice(OPS_REASONS)}'",
        lambda: (
            f"{rng.choice(SLUGS)} (prod): P95 {rng.randint(300, 4000)} ms, error rate"
            f" {rng.random() * 3:.2f} %, drift {rng.random() / 5:.3f},"
            f" {rng.randint(1000, 2_000_000):,} predictions"
        ),
        lambda: (
            f"CHG-{rng.randint(1, 9999)} approved by <@U0BOB> at 2026-11-"
            f"{rng.randint(10, 28)} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} AEDT"
        ),
        lambda: (
            f"Deploy {rng.choice(VERSIONS)} to {rng.choice(SLUGS)} (canary {rng.randint(1, 50)}%)"
            f" requested by <@U0ALICE> — CHG-{rng.randint(1, 9999)}"
        ),
        lambda: (
            f"{rng.randint(1, 12)} replicas, queue depth {rng.randint(0, 400)},"
            f" {rng.randint(1, 900)} req/s, {rng.randint(1, 64)} GiB"
        ),
        lambda: (
            f'at="2026-12-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:00" '
            f"ticket=CHG-{rng.randint(1, 99999)}"
        ),
    ]
    while len(out) < count:
        out.append(rng.choice(templates)())
    return out


@dataclass
class Measure:
    recalled: int = 0
    total: int = 0
    false_positives: int = 0
    operational: int = 0
    misses: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.recalled / self.total if self.total else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.operational if self.operational else 0.0


def measure(redact: Callable[[str], str]) -> dict[str, Measure]:
    """Recall per kind on the generated PII, and the operational lines it changed."""
    results: dict[str, Measure] = {}
    for sample in pii_samples():
        m = results.setdefault(sample.kind, Measure())
        out = redact(sample.text)
        m.total += 1
        if sample.value not in out and f"[{sample.kind}:" in out:
            m.recalled += 1
        else:
            m.misses.append(f"{sample.value!r} in {out!r}")
    ops = results.setdefault("operational", Measure())
    for line in operational():
        ops.operational += 1
        out = redact(line)
        if out != line:
            ops.false_positives += 1
            ops.changed.append(f"{line!r} -> {out!r}")
    return results
