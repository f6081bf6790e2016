"""PII redaction: the one module every exit goes through.

Slack messages, ephemeral replies, audit fields, log lines (`RedactingFilter`), exports
and the `aiops-bot redact` filter (`redact_stream`) all call `redact()` /
`redact_value()` from here, so what is masked is decided in one place.

What is masked
--------------
Each value below becomes a token ``[KIND:xxxxxxxx]``; the label before it stays.

- EMAIL: any e-mail address, except Google service accounts (`*.gserviceaccount.com`),
  which are not people.
- PHONE: AU `0412 345 678`, `(02) 9876 5432`, `02 9876 5432`; US `(555) 123-4567`,
  `555-123-4567`, `555.123.4567`, `555 123 4567`; any `+<country>` number of 8–15
  digits (`+61 412 345 678`, `+1 555 123 4567`, `+44 20 7946 0958`); any 8–15 digit
  number after `phone`, `mobile`, `tel`, `cell`, `fax` ….
- SSN: US `123-45-6789` and `123 45 6789` (areas 000, 666 and 9xx are not SSNs);
  9 digits after `SSN` / `social security number`.
- TFN: 9 digits (`123456782`, `123 456 782`, `123-456-782`) whose ATO check holds
  (weights 1,4,3,7,5,8,6,9,10; sum mod 11 = 0); 8 or 9 digits after `TFN` / `tax file
  number`, check or not.
- MEDICARE: 10 or 11 digits (`2123 45670 1`, `2123456701`), first digit 2–6, check
  digit = (weights 1,3,7,9,1,3,7,9 over digits 1–8) mod 10; 10–11 digits after
  `medicare`, check or not.
- CARD: 13–19 digits in card groups (`4111 1111 1111 1111`, `3782 822463 10005`) or
  13–16 contiguous digits, passing Luhn and starting like a card network (2221–2720,
  3, 4, 5, 6); 13–19 digits passing Luhn after `card`, `credit card`, `visa`, `cc` ….
- BANK_ACCOUNT: BSB and account as one token (`BSB 062-000 account 12345678`,
  `062-000 12345678`, `bsb: 083004, acct no. 123456789`, a lone `BSB 062000`), and
  6–10 digits after `account` / `acct` / `a/c` (not `service account` / `billing
  account`); an IBAN, labelled or not, compact or in groups of four (`GB82 WEST 1234
  5698 7654 32`), when its country's length and the ISO 13616 mod-97 check hold.
- DOB: a date after `DOB`, `date of birth`, `birth date`, `born (on)`, `b.`: `1985-03-14`,
  `14/03/1985`, `3/7/92`, `14 March 1985`, `04-Jun-1980`, `4 Jun 80`, `4.Jun.80`,
  `March 14, 1985`, `March 1985`. A date followed by a time is not a birth date.
- NAME: up to four capitalised or upper-case words after `name`, `customer`,
  `applicant`, `borrower`, `guarantor`, `client`, `cardholder`, `account holder` (or
  their plurals), `Mr` / `Ms` / `Dr` … (`Nguyễn Văn An`, `Wei Li`, `O'Brien-Walsh`,
  `McDonald`, `van Beethoven`, `JANE CITIZEN`); the label may be followed by `:`, `-`,
  `<`, `(` or Slack's `&lt;`; every name of a list joined by `,`, `and`, `&` gets its
  own token. Upper case needs two words (one after a title): `customer API` is an
  acronym. Up to four words in any case after `full name:`, `customer name:`,
  `surname:` …. Honorifics and a possessive `'s` stay outside the token.
- ADDRESS: a street address, whole, as one token: an optional unit or level (`Unit 4/`,
  `Level 3,`, `Flat 2,`, `Apt 5B,`), a house number (`12`, `221B`, `12-14`), one to four
  capitalised words of street name, a street type (`St`, `Street`, `Rd`, `Ave`, `Dr`,
  `Pde`, `Tce`, `Way` …), then what follows of a directional (`NW`), suburb and city,
  state (AU and US codes) and postcode (AU/NZ 4 digits, US ZIP and ZIP+4, UK
  `SW1A 2AA`); `PO Box 123` with its locality and postcode. AU, NZ, UK and US shapes.
  Addresses are matched before names, so `12 Example Dr Sydney` is a street, not a
  doctor.

Labels may be written `TFN: `, `tfn=`, `"tfn": "…"`, `*TFN:* `, `card no. `,
`date_of_birth`, `dateOfBirth`.

Figures next to an income or credit-score label become bands, not tokens, so a reader
keeps the order of magnitude and loses the figure:

- ``income $85,000`` → ``income [INCOME_BAND_3]``. Labels: `income`, `salary`,
  `earnings`, `wages`, `earns`, with any qualifier (`annual`, `gross`, `household`,
  `monthly` …). Amounts are annualised (`per month`, `/mo`, `monthly` × 12;
  `per fortnight` × 26; `per week`, `pw`, `weekly` × 52); `$85k`, `AUD 85,000`,
  `1.2m` are read; a range is banded by its midpoint. Bands (annual, any currency)
  are `INCOME_BANDS` below.
- ``credit score 720`` → ``credit score [CREDIT_SCORE_BAND_4]``. Labels: `credit score`,
  `credit rating`, `bureau score`, `Equifax`, `Experian`, `illion`, `Veda`, `FICO`;
  `612/1000` and `612 out of 1000` are read. Bands are bureau-neutral hundreds (Equifax
  AU runs 0–1200, Experian and illion 0–1000, FICO 300–850): `CREDIT_SCORE_BANDS`.

How tokens work
---------------
A token is the first 8 hex digits of HMAC-SHA256(key, KIND + NUL + normalised value).
Normalising first makes one value give one token however it is written: e-mail lower-
cased; phone numbers as E.164 (`0412 345 678`, `+61 412 345 678` agree; a 10-digit
number starting 0 is Australian, other 10-digit numbers are North American); identity,
card and account numbers as digits (Medicare: the 10-digit card number, without the
individual reference number); dates of birth as ISO dates (`14/03/1985`, `14 March
1985` agree; numeric dates are read day first, as in Australia, unless impossible;
two-digit years up to 25 are 20xx); names case-folded, spaces collapsed; addresses case-folded, commas and full stops
dropped, spaces collapsed.

The key is the environment variable ``AIOPS_PII_KEY`` (any string; use 32+ random
bytes, e.g. ``openssl rand -hex 32``), read when a `Redactor` is made (the default one
on first use). It lives only inside the HMAC object: not in the data, a log line, a
repr or an attribute. Without it each process draws a random key: masking is just as
complete, but tokens correlate only within that process (a warning says so, once).
Eight hex digits let people correlate within an incident or an export; they are not
unique identifiers — among many thousands of distinct values some will share a token.

What is deliberately left alone
-------------------------------
Operations must still read what the bot says, so these pass through unchanged:
Vertex and GCP resource names (`projects/…/endpoints/4567891234567890123`, operation
names), model versions (`gemma-3-1b-it@1.3.0-rc1`), existing tokens and bands,
percentages, latencies and other figures with a unit (`2150 ms`, `4 GiB`,
`12 tokens`), timestamps (ISO 8601, `2026-11-27 08:30 AEDT`), change ids
(`CHG-12`), Slack ids and mentions (`U0ALICE`, `<@U0BOB>`), hex ids and hashes.

Unlabelled digit runs are masked only when shape and checksum say so, and never when
they are part of a longer digit run or of a word, path, version or decimal (`/4111…`,
`req-123…`, `1.234…`); right after an operational word (`endpoint`, `deployed model`,
`operation`, `id`, `count`, `bytes`, `request` …); right before a unit (`ms`, `s`,
`tokens`, `%` …); one of a row of numbers separated by single spaces (for the spaced
forms); or 17–19 contiguous digits, the length of Vertex ids (a card of that length is
masked when grouped or labelled). Next to `income`, a figure under 1,000 with no
currency or period (`income 0.12`: a drift score for the feature) is not money;
next to a credit label, a figure over 1,200 is not a score. Names, dates of birth,
account numbers, incomes and credit scores are masked only when labelled.

Redaction is idempotent: tokens are never re-masked, and the patterns are re-applied
until nothing changes (masking a value can change its neighbour's context).

Speed: every pattern is compiled once; cheap tests on the whole text (an `@`, a run of
8+ digits that is not a date or a Vertex id, a label word) pick the patterns worth
running, so most operational lines run none. `bench/bench_redaction.py` measures it.

Known limits: unlabelled names and dates, lower-case names after a bare `name:` or
`customer`, upper-case organisation names after a label (`customer ACME PTY LTD`,
masked as a name: over-masking, on the safe side), 8-digit (pre-1990s) TFNs without a label, an address without a house number and
street type (`Sydney NSW 2000` alone), driver-licence
and passport numbers pass. `redact_value` returns unknown objects unchanged (serialise
them first) and `RedactingFilter` does not touch fields passed with `extra=`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

__all__ = [
    "CREDIT_SCORE_BANDS",
    "INCOME_BANDS",
    "KINDS",
    "RedactingFilter",
    "Redactor",
    "credit_score_band",
    "default_redactor",
    "iban_valid",
    "income_band",
    "luhn_valid",
    "medicare_valid",
    "redact",
    "redact_stream",
    "redact_value",
    "tfn_valid",
    "use_default",
]

_log = logging.getLogger(__name__)

KEY_ENV: Final = "AIOPS_PII_KEY"
TOKEN_HEX: Final = 8
KINDS: Final = (
    "EMAIL",
    "PHONE",
    "SSN",
    "TFN",
    "MEDICARE",
    "CARD",
    "BANK_ACCOUNT",
    "DOB",
    "NAME",
    "ADDRESS",
)

# (band, lowest annual amount in the band); a band runs up to the next one's lowest.
INCOME_BANDS: Final = (
    (1, 0),  # under 30,000
    (2, 30_000),  # 30,000 – 59,999
    (3, 60_000),  # 60,000 – 99,999
    (4, 100_000),  # 100,000 – 149,999
    (5, 150_000),  # 150,000 – 249,999
    (6, 250_000),  # 250,000 and over
)
# (band, lowest score in the band); 0–1200 covers Equifax AU, Experian, illion and FICO.
CREDIT_SCORE_BANDS: Final = (
    (1, 0),  # under 500
    (2, 500),  # 500 – 599
    (3, 600),  # 600 – 699
    (4, 700),  # 700 – 799
    (5, 800),  # 800 – 899
    (6, 900),  # 900 – 1200
)
_CREDIT_SCORE_MAX: Final = 1200
_INCOME_MAX: Final = 1_000_000_000  # a figure this large next to `income` is not one


def income_band(annual_amount: float) -> int:
    """The `INCOME_BANDS` band of an annual amount."""
    band = 1
    for number, lowest in INCOME_BANDS:
        if annual_amount >= lowest:
            band = number
    return band


def credit_score_band(score: int) -> int:
    """The `CREDIT_SCORE_BANDS` band of a score."""
    band = 1
    for number, lowest in CREDIT_SCORE_BANDS:
        if score >= lowest:
            band = number
    return band


# --------------------------------------------------------------------------- checksums


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_TFN_WEIGHTS: Final = (1, 4, 3, 7, 5, 8, 6, 9, 10)
_MEDICARE_WEIGHTS: Final = (1, 3, 7, 9, 1, 3, 7, 9)


def tfn_valid(digits: str) -> bool:
    """The ATO check on a 9-digit tax file number."""
    if len(digits) != 9:
        return False
    return sum((ord(c) - 48) * w for c, w in zip(digits, _TFN_WEIGHTS, strict=True)) % 11 == 0


def medicare_valid(digits: str) -> bool:
    """Medicare card number (10 digits, or 11 with the individual reference)."""
    if len(digits) not in (10, 11) or digits[0] not in "23456":
        return False
    check = sum((ord(c) - 48) * w for c, w in zip(digits[:8], _MEDICARE_WEIGHTS, strict=True))
    return check % 10 == ord(digits[8]) - 48


# ISO 13616 IBAN lengths by country (SWIFT IBAN registry).
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length, and the mod-97 check (rearranged, letters as
    10–35, the number mod 97 is 1). `iban` compact, upper case."""
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum() or not iban.isascii():
        return False
    if not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _card_prefix(digits: str) -> bool:
    """Starts like a card of a real network: Mastercard 2221–2720, or 3, 4, 5, 6."""
    if digits[0] in "3456":
        return True
    return 2221 <= int(digits[:4]) <= 2720


def _ssn_valid(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# ----------------------------------------------------------------------------- patterns

_SP = r"[ \t\u00a0]"  # horizontal space
_W = r"[ _-]?"  # between the words of a label: `date of birth`, `date_of_birth`, `dateOfBirth`
_NUM_START = r"(?<![\w/.#@+$%-])(?<![0-9][:,])"  # a digit run that stands alone
_NUM_END = r"(?![\w/@%$]|[.,:-][0-9A-Za-z])"

# A label, then what may sit between it and its value: `TFN: `, `card no. `, `"dob": "`,
# `born on `, `medicare # `.
_Q = r"[\"'*_`]{0,2}"  # quotes, and mrkdwn emphasis: `*TFN:* 123 456 782`
_GAP = (
    rf"{_Q}{_SP}*(?i:(?:no|num|number|nbr)\.?{_SP}*|\#{_SP}*)?"
    rf"(?:[:=#]{_SP}*|(?i:is|of|on|was){_SP}+|[-–]{_SP}*)?{_Q}{_SP}*"
)


def _label(words: str) -> str:
    return rf"(?<![\w\[-])(?i:{words})(?![A-Za-z])"


_L_SSN = _label(rf"ssn|social{_W}security(?:{_W}(?:number|no|num))?")
_L_TFN = _label(rf"tfn|tax{_W}file(?:{_W}(?:number|no|num))?")
_L_MEDICARE = _label(rf"medicare(?:{_W}card)?(?:{_W}(?:number|no|num))?")
_L_CARD = _label(
    rf"(?:(?:credit|debit|payment|bank){_W})?card(?:{_W}(?:number|no|num))?"
    rf"|cc(?:{_W}(?:number|no|num))?|pan|visa|master{_W}card|amex|american{_W}express"
    r"|diners|jcb|maestro|unionpay|discover"
)
_L_ACCOUNT = _label(rf"(?:bank{_W})?(?:account|acct|acc|a/c)(?:{_W}(?:number|no|num))?")
_L_BSB = _label("bsb")
_L_PHONE = _label(
    rf"(?:home|work|mobile|cell|contact|daytime){_W}(?:phone|number|no)"
    r"|phone|ph|tel|telephone|mobile|mob|cell|cellphone|landline|fax|sms|whatsapp"
)
_L_DOB = _label(
    rf"dob|d\.o\.b\.?|date{_W}of{_W}birth|birth{_W}date|birthdate|birthday|born|(?-i:b)\."
)
_L_INCOME = _label(
    r"(?:(?:annual|annually|yearly|monthly|weekly|fortnightly|gross|net|household|taxable"
    rf"|declared|stated|verified|base|total|combined|personal|employment|rental){_W})*"
    r"(?:income|salary|earnings|wages?|earns|earning)"
)
_L_CREDIT = _label(
    rf"(?:(?:credit|bureau|equifax|experian|illion|veda|fico){_W}(?:score|rating)s?)"
    r"|vedascore|equifax|experian|illion|fico"
)
_L_NAME_STRONG = _label(
    r"(?:(?:full|legal|first|given|middle|last|family|maiden|preferred|customer|applicant"
    r"|co-?applicant|borrower|co-?borrower|client|account|cardholder|card-?holder"
    rf"|account{_W}holder|guarantor|spouse|nominee|beneficiary|payee){_W}names?)"
    rf"|surname|forenames?|name{_W}on{_W}card"
)
_L_NAME_WEAK = (
    r"(?<![\w\[-])(?:(?i:(?:name|customer|applicant|co-?applicant|borrower|co-?borrower"
    rf"|guarantor|client|cardholder|card{_W}holder|account{_W}holder|payee|nominee|spouse)s?"
    r"|beneficiary|beneficiaries)(?![A-Za-z])|(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\b\.?)"
)

_MONTH_NAME = (
    r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![A-Za-z])"
)
_MONTH = rf"{_MONTH_NAME}\.?"
_DAY = r"[0-3]?[0-9](?i:st|nd|rd|th)?"
_DATE = (
    r"(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
    r"|[0-9]{1,2}[-/.][0-9]{1,2}[-/.](?:[0-9]{4}|[0-9]{2})"
    rf"|{_DAY}(?:[-/.]|{_SP}+(?:of{_SP}+)?){_MONTH_NAME}(?:[-/.,]{_SP}*|{_SP}+)"
    r"(?:[0-9]{4}|[0-9]{2})"
    rf"|{_MONTH}{_SP}+{_DAY},?{_SP}+[0-9]{{4}}"
    rf"|{_MONTH},?{_SP}+[0-9]{{4}}"
    r"|[0-9]{8})(?![0-9])"
)

_AMOUNT = (
    rf"(?:(?:A|AU|US|NZ)?\${_SP}?|(?i:aud|usd|nzd){_SP}?)?"
    r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?![0-9])"
    rf"(?:{_SP}?(?i:k|m|mil|million|thousand)(?![A-Za-z]))?"
    rf"(?:{_SP}?(?i:aud|usd|nzd|dollars)(?![A-Za-z]))?"
)
_PERIOD = (
    rf"(?:{_SP}*(?i:p\.?a\.?|per{_SP}+(?:annum|year|yr|month|week|fortnight)"
    rf"|/{_SP}?(?:yr|year|annum|mo|mth|month|wk|week|fortnight|fn)"
    rf"|a{_SP}+(?:year|month|week|fortnight)|annually|yearly|monthly|weekly|fortnightly"
    r"|pm|pw)(?![A-Za-z]))?"
)

_UP = "A-ZÀ-ÖØ-Þ\u0100-\u017f\u1e00-\u1eff"
_LO = "a-zß-öø-ÿ\u0100-\u017f\u1e00-\u1eff"
_NAME_WORD = (
    rf"(?:[{_UP}][{_LO}]*(?:['’]?[{_UP}][{_LO}]+)?(?:-[{_UP}][{_LO}]+)*\.?)"
    r"(?![\w])(?!['’][A-Za-z]{2})"
)
_UPPER_NAME_WORD = (  # `JANE`, `O'BRIEN`, `SMITH-JONES`, `NGUYỄN`: upper case after a label
    rf"(?:[{_UP}]['’])?[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})*(?![\w'’-])"
)
_PARTICLE = r"(?:van|von|de|da|di|del|der|den|le|la|du|dos|bin|binti|ibn|al)"
_ANY_NAME_WORD = rf"(?:{_NAME_WORD}|{_UPPER_NAME_WORD})"
_ONE_NAME = rf"{_ANY_NAME_WORD}(?:{_SP}+(?:{_PARTICLE}{_SP}+)?{_ANY_NAME_WORD}){{0,3}}"
# a list of names: `Jane Citizen and John Smith`, `Jane Citizen, John Smith & Wei Li`
_NAME_LIST_SEP = rf"(?:{_SP}*,{_SP}*(?:(?:and|&){_SP}+)?|{_SP}+(?:and|&){_SP}+)"
_WEAK_NAME_VALUE = rf"{_ONE_NAME}(?:{_NAME_LIST_SEP}{_ONE_NAME})*"
_STRONG_NAME_WORD = r"[^\W\d_](?:[^\W\d_]|['’.-](?=[^\W\d_]))*\.?(?![\w'’-])"  # letters only
_STRONG_LIST_WORD = rf"(?!(?i:and)(?![\w'’-])){_STRONG_NAME_WORD}"
_STRONG_ONE_NAME = rf"{_STRONG_LIST_WORD}(?:{_SP}+{_STRONG_LIST_WORD}){{0,3}}"
_STRONG_NAME_VALUE = rf"{_STRONG_ONE_NAME}(?:{_NAME_LIST_SEP}{_STRONG_ONE_NAME})*"

# Never touched: existing tokens, resource names, model versions.
_KEEP_TOKEN = re.compile(
    r"\[(?:" + "|".join(KINDS) + rf"):[0-9a-f]{{{TOKEN_HEX}}}\]"
    r"|\[(?:INCOME|CREDIT_SCORE)_BAND_[0-9]+\]"
)
_KEEP_PATH = re.compile(
    r"(?<![\w.-])(?:projects|locations|endpoints|models|deployedModels|operations|publishers"
    r"|datasets|trainingPipelines|customJobs|batchPredictionJobs|pipelineJobs|indexes"
    r"|indexEndpoints|featurestores|tensorboards|metadataStores|studies|notebookRuntimes"
    r"|alertPolicies|notificationChannels|timeSeries|uptimeCheckConfigs|logs|sinks|buckets"
    r"|instances|zones|regions|services|revisions|secrets|keyRings|cryptoKeys|serviceAccounts"
    r"|billingAccounts|organizations|folders|subscriptions|topics|jobs|versions)"
    r"/[\w.@:%~-]+(?:/[\w.@:%~-]+)*"
)
_KEEP_VERSION = re.compile(
    r"(?<![\w.@-])[a-z0-9][a-z0-9._-]*@[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?"
)


def _protected(text: str) -> list[tuple[int, int]]:
    """Spans never touched: existing tokens, resource names, model versions."""
    spans: list[tuple[int, int]] = []
    if "[" in text:
        spans += [m.span() for m in _KEEP_TOKEN.finditer(text)]
    if "/" in text:
        spans += [m.span() for m in _KEEP_PATH.finditer(text)]
    if "@" in text:
        spans += [m.span() for m in _KEEP_VERSION.finditer(text)]
    if len(spans) < 2:
        return spans
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_OPS_WORDS: Final = _words(
    """
    endpoint endpoints deployed model models modelid operation operations op ops id
    ids uid job jobs trace span request requests req build revision version project
    ts timestamp epoch seq sequence offset hash sha commit pid port count counts
    total bytes tokens rows row replica replicas instance node nodes pod ticket
    incident inc chg change alert policy metric metrics duration latency size limit
    quota budget index dataset pipeline batch run execution event events message msg
    thread channel slack permalink service billing storage aws gcp cloud invoice
    order serial
    """
)
_PREV_WORD = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)[ \t\"':=#(\[]*\Z")
_UNIT_AFTER = re.compile(
    r"[ \t]?(?i:ms|s|sec|secs|seconds|min|mins|minutes|h|hr|hrs|hours|days|b|bytes|kb|mb|gb|tb"
    r"|kib|mib|gib|tib|tokens|req|reqs|requests|rps|qps|rows|records|items|events|times"
    r"|predictions|%)(?![A-Za-z])"
)
_SEQ_BEFORE = re.compile(r"[0-9][ \t-]\Z")
_SEQ_AFTER = re.compile(r"[ \t-][0-9]")
_NUMBER_RUN = re.compile(r"[0-9](?:[ ().\u00a0\t\n/_-]{0,3}[0-9])+")  # _CARD_SEP included
_DATE_RUN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?: [0-9]{2})?")
_GATE_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
# Gates for `_ALSO_RULES`, written to start with a literal or a digit (the letters are
# checked behind), which Python's `re` scans for much faster than a leading lookbehind.
_IBAN_GATE = re.compile(r"[0-9]{2}(?<=[A-Za-z]{2}[0-9]{2})(?:[ \t\u00a0]?[A-Za-z0-9]{4}){2}")
_BORN_ABBREV = re.compile(r"b\.(?<![\w\[-]b\.)[ \t\u00a0]*(?:[0-9]|[A-Za-z]{3})")
_HONORIFIC = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\b")
_NON_DIGIT = re.compile(r"[^0-9]")
_LOOKS_LIKE_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_NAME_STOP: Final = _words(  # words that are never (the start of) a name
    """
    none null nil na n/a unknown redacted anonymous anon test tester sample example
    gemma vertex google slack loan loans assessor production prod staging stage dev
    development sandbox service services support team teams impact facing data
    success experience segment segments portal record records details detail id ids
    identifier number name names account accounts application applications app score
    scores income traffic request requests endpoint endpoints model models version
    versions count the a an this that these those all any each every some no yes
    true false ok error errors warning info debug alert alerts canary rollback
    deploy deployment approved rejected pending cancelled expired rate rates churn
    journey complaints care api sdk cli ui and or with dob email phone mobile tfn
    ssn medicare card bsb salary born of status affected impacted approve approval
    rollback rolled completed complete healthy breaching waiting passed failed failing
    check step summary report change changes dashboard list total notified notice
    notification feedback satisfaction survey base growth retention onboarding visible
    high low medium critical major minor severity down up outage sla slo breach breaches
    nps kyc aml pii uat
    """
)
_NAME_OPS_PREFIX: Final = _words(
    """
    endpoint model display project service file host job bucket metric policy
    channel team dataset pipeline region environment env zone resource operation
    deployment version machine accelerator app bot alert label key field column
    table topic queue secret image node cluster instance repo branch tag feature
    schedule window
    """
)


def _digits(text: str) -> str:
    return _NON_DIGIT.sub("", text)


def _has_numeric_candidate(text: str) -> bool:
    """A run of 8+ digits that could be PII: not a date, not a 17+ digit (Vertex) id."""
    for run in _NUMBER_RUN.findall(text):
        if len(run) < 8:
            continue
        n = len(_digits(run))
        if n < 8 or (n >= 17 and n == len(run)) or _DATE_RUN.fullmatch(run):
            continue
        return True
    return False


def _prev_is_ops(text: str, start: int) -> bool:
    m = _PREV_WORD.search(text, max(0, start - 48), start)
    if m is None:
        return False
    parts = re.split(r"[_.-]", m.group(1).lower())
    return any(p in _OPS_WORDS for p in parts)


def _unit_follows(text: str, end: int) -> bool:
    return _UNIT_AFTER.match(text, end) is not None


def _in_sequence(text: str, start: int, end: int) -> bool:
    """One of a row of numbers separated by single spaces or dashes."""
    return (
        _SEQ_BEFORE.search(text, max(0, start - 2), start) is not None
        or _SEQ_AFTER.match(text, end) is not None
    )


def _bare_ok(m: re.Match[str], *, sequence: bool = False) -> bool:
    """An unlabelled number that does not read as an operational figure."""
    text, start, end = m.string, m.start("v"), m.end("v")
    if _prev_is_ops(text, start) or _unit_follows(text, end):
        return False
    return not (sequence and _in_sequence(text, start, end))


# ------------------------------------------------------------------------- normalising

_MONTHS: Final = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_ISO_DATE = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
_DMY_DATE = re.compile(r"([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4}|[0-9]{2})")
_COMPACT_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_WORDS_IN_DATE = re.compile(r"[0-9]+|[a-z]+")


def _norm_date(value: str) -> str:
    text = value.strip().lower()
    y = mo = d = 0
    if m := _ISO_DATE.fullmatch(text):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif m := _DMY_DATE.fullmatch(text):
        d, mo, y = int(m[1]), int(m[2]), int(m[3])
        if mo > 12 >= d:
            d, mo = mo, d
        if len(m[3]) == 2:
            y += 2000 if y <= 25 else 1900
    elif m := _COMPACT_DATE.fullmatch(text):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    else:
        numbers: list[int] = []
        for part in _WORDS_IN_DATE.findall(text):
            if part.isdigit():
                numbers.append(int(part))
            elif part[:3] in _MONTHS and not mo:
                mo = _MONTHS[part[:3]]
        for n in numbers:
            if n >= 1000:
                y = n
            else:
                d = n
        if not y and mo and len(numbers) == 2:  # `4 Jun 80`: day, month, two-digit year
            d, y = numbers[0], numbers[1] + (2000 if numbers[1] <= 25 else 1900)
        if y and 1 <= mo <= 12 and not d:
            return f"{y:04d}-{mo:02d}"  # month and year only
    if 1 <= mo <= 12 and 1 <= d <= 31 and y:
        return f"{y:04d}-{mo:02d}-{d:02d}"
    return " ".join(text.split())


def _norm_phone(value: str) -> str:
    raw = value.replace("(0)", "").strip()
    digits = _digits(raw)
    if raw.startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    if digits.startswith("0") and len(digits) == 10:
        return "+61" + digits[1:]
    if len(digits) == 9 and digits[0] in "2345789":
        return "+61" + digits
    if len(digits) == 10:
        return "+1" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return digits


def _norm_name(value: str) -> str:
    return " ".join(value.replace(".", " ").casefold().split())


_MONEY_MARK = re.compile(r"[$,]|[0-9][ \t\u00a0]?[kKmM]|(?i:aud|usd|nzd|dollar|thousand|mil)")
_MULTIPLIERS: Final = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "mil": 1_000_000}
_AMOUNT_PARTS = re.compile(
    r"([0-9][0-9,]*(?:\.[0-9]+)?)(?:[ \t\u00a0]?(k|m|mil|million|thousand)(?![a-z]))?"
)
_PERIOD_FACTORS: Final = (
    (re.compile(r"fortnight|/\s?fn\b"), 26),
    (re.compile(r"month|/\s?mth?\b|/\s?mo\b|\bpm\b"), 12),
    (re.compile(r"week|/\s?wk\b|\bpw\b"), 52),
)


def _annual_amount(label: str, value: str) -> float | None:
    amounts = []
    for number, mult in _AMOUNT_PARTS.findall(value.lower()):
        try:
            amount = float(number.replace(",", ""))
        except ValueError:
            return None
        if mult:
            amount *= _MULTIPLIERS.get(mult, 1_000_000)
        amounts.append(amount)
    if not amounts:
        return None
    amount = sum(amounts) / len(amounts)
    where = (label + " " + value).lower()
    for period, factor in _PERIOD_FACTORS:
        if period.search(where):
            return amount * factor
    return amount


# ------------------------------------------------------------------------------ rules

_Handler = Callable[["Redactor", re.Match[str]], "str | None"]


class _Rule:
    """One pattern and what to do with a match.

    `gate` says when the rule can be skipped without running its pattern: `at` needs an
    `@` in the text, `digits` a run of 8+ digits that is not a date or a Vertex id,
    `words` one of `words` as a word (camelCase and snake_case split) or one of `also`
    as a substring, or (with `honorifics`) `Mr` / `Ms` / `Dr` … as a word; `iban` two
    letters, two digits and eight letters or digits (`GB82 WEST 1234`).
    """

    __slots__ = ("also", "gate", "handler", "honorifics", "name", "pattern", "words")

    def __init__(
        self,
        name: str,
        pattern: str,
        handler: _Handler,
        gate: str,
        words: str = "",
        also: tuple[str, ...] = (),
        *,
        honorifics: bool = False,
    ) -> None:
        self.name = name
        self.pattern = re.compile(pattern)
        self.handler = handler
        self.gate = gate
        self.words = frozenset(words.split())
        self.also = also
        self.honorifics = honorifics


def _swap(m: re.Match[str], start: int, end: int, token: str) -> str:
    base = m.start()
    whole = m.group()
    return whole[: start - base] + token + whole[end - base :]


def _swap_v(m: re.Match[str], token: str) -> str:
    return _swap(m, m.start("v"), m.end("v"), token)


def _h_email(r: Redactor, m: re.Match[str]) -> str | None:
    value = m["v"]
    if value.lower().endswith(".gserviceaccount.com"):
        return None  # a service account, not a person
    return _swap_v(m, r.token("EMAIL", value.lower()))


def _h_labelled(kind: str, lengths: tuple[int, ...]) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        digits = _digits(m["v"])
        if len(digits) not in lengths:
            return None
        if kind == "MEDICARE":
            digits = digits[:10]
        return _swap_v(m, r.token(kind, digits))

    return handle


def _h_phone_labelled(r: Redactor, m: re.Match[str]) -> str | None:
    if not 8 <= len(_digits(m["v"])) <= 15 or _LOOKS_LIKE_DATE.search(m["v"]):
        return None
    return _swap_v(m, r.token("PHONE", _norm_phone(m["v"])))


def _h_phone(*, bare: bool = False, sequence: bool = False) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        if not 8 <= len(_digits(m["v"].replace("(0)", ""))) <= 15:
            return None
        if _LOOKS_LIKE_DATE.search(m["v"]):
            return None  # `+2026-11-27`: a date after a plus sign
        if bare and not _bare_ok(m, sequence=sequence):
            return None
        return _swap_v(m, r.token("PHONE", _norm_phone(m["v"])))

    return handle


def _h_ssn(*, sequence: bool) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        digits = _digits(m["v"])
        if not _ssn_valid(digits) or not _bare_ok(m, sequence=sequence):
            return None
        return _swap_v(m, r.token("SSN", digits))

    return handle


def _h_tfn(*, sequence: bool) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        digits = _digits(m["v"])
        if not tfn_valid(digits) or not _bare_ok(m, sequence=sequence):
            return None
        return _swap_v(m, r.token("TFN", digits))

    return handle


def _h_medicare(*, sequence: bool) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        digits = _digits(m["v"])
        if not medicare_valid(digits) or not _bare_ok(m, sequence=sequence):
            return None
        return _swap_v(m, r.token("MEDICARE", digits[:10]))

    return handle


def _h_card_labelled(r: Redactor, m: re.Match[str]) -> str | None:
    digits = _digits(m["v"])
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits):
        return None  # after a label any network, but still a card number
    return _swap_v(m, r.token("CARD", digits))


def _h_card(*, contiguous: bool) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        digits = _digits(m["v"])
        if not 13 <= len(digits) <= 19 or not luhn_valid(digits) or not _card_prefix(digits):
            return None
        if contiguous and not _bare_ok(m):
            return None
        return _swap_v(m, r.token("CARD", digits))

    return handle


def _h_bank(r: Redactor, m: re.Match[str]) -> str | None:
    bsb = _digits(m["b"])
    account = _digits(m["a"]) if m["a"] else ""
    if len(bsb) != 6:
        return None
    end = m.end("a") if m["a"] else m.end("b")
    return _swap(m, m.start("b"), end, r.token("BANK_ACCOUNT", f"{bsb}-{account}"))


def _h_iban(r: Redactor, m: re.Match[str]) -> str | None:
    value = m["v"]
    length = _IBAN_LENGTHS.get(value[:2].upper())
    if length is None:
        return None
    # the pattern may run on into the next word (`… 1764 today`): cut at the length
    # the country gives, which must end a group
    count = end = 0
    while end < len(value) and count < length:
        count += not value[end].isspace()
        end += 1
    if count != length or (end < len(value) and not value[end].isspace()):
        return None
    iban = "".join(value[:end].split()).upper()
    if not iban_valid(iban):
        return None
    return _swap(m, m.start("v"), m.start("v") + end, r.token("BANK_ACCOUNT", iban))


def _h_bank_bare(r: Redactor, m: re.Match[str]) -> str | None:
    if _prev_is_ops(m.string, m.start("b")) or _unit_follows(m.string, m.end("a")):
        return None
    return _h_bank(r, m)


def _h_account(r: Redactor, m: re.Match[str]) -> str | None:
    if _prev_is_ops(m.string, m.start()):
        return None  # `service account`, `billing account`
    return _swap_v(m, r.token("BANK_ACCOUNT", _digits(m["v"])))


def _h_dob(r: Redactor, m: re.Match[str]) -> str | None:
    return _swap_v(m, r.token("DOB", _norm_date(m["v"])))


def _h_income(r: Redactor, m: re.Match[str]) -> str | None:
    amount = _annual_amount(m["l"], m["v"])
    if amount is None:
        return None
    if not _MONEY_MARK.search(m["v"]) and amount < 1000 and amount == _annual_amount("", m["v"]):
        return None  # `income 0.12`: a drift or attribution figure for the feature, not money
    if amount >= _INCOME_MAX or _unit_follows(m.string, m.end("v")):
        return None  # `income 2150 ms`, `income 1234567890123456789`: not an income
    return _swap_v(m, f"[INCOME_BAND_{income_band(amount)}]")


def _h_credit(r: Redactor, m: re.Match[str]) -> str | None:
    score = int(m["s"])
    if score > _CREDIT_SCORE_MAX or _unit_follows(m.string, m.end("v")):
        return None
    return _swap_v(m, f"[CREDIT_SCORE_BAND_{credit_score_band(score)}]")


_WORD_SPAN = re.compile(r"\S+")
_HONORIFICS: Final = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof"})


_NAME_LIST_SPLIT = re.compile(
    r"[ \t\u00a0]*,[ \t\u00a0]*(?:(?:and|&)[ \t\u00a0]+)?|[ \t\u00a0]+(?:and|&)[ \t\u00a0]+"
)
# Stop words that are also name parts (`Nguyễn Văn An`, `Tran Thi Le`): kept when
# capitalised at the end of a name; the first set also at its start (`An Nguyen`).
_NAME_PART_STOPS: Final = frozenset({"an", "le", "la", "da", "de", "di", "du", "na", "ha"})
_NAME_PART_FIRST: Final = frozenset({"an", "le", "na", "ha"})


def _is_upper(word: str) -> bool:
    return word.isupper()


def _trimmed_name(text: str, base: int, *, weak: bool, honorific: bool) -> tuple[int, int] | None:
    """The span of the name proper in `text` (at `base` of the whole string): stop words
    and trailing punctuation cut off."""
    words = [(w.start(), w.end(), w.group()) for w in _WORD_SPAN.finditer(text)]
    while words and words[0][2].rstrip(".").casefold() in _HONORIFICS:
        words.pop(0)  # `applicant: Ms Jane Citizen` keeps `Ms`
        honorific = True
    if weak and words:
        first = words[0][2].rstrip(".").casefold()
        if first in _NAME_STOP and not (
            first in _NAME_PART_FIRST
            and (len(words) > 1 or honorific)
            and not words[0][2].islower()
        ):
            return None
    while words:
        last = words[-1][2]
        folded = last.rstrip(".").casefold()
        if folded in _NAME_PART_STOPS and not last.islower() and (len(words) > 1 or honorific):
            break  # `Nguyễn Văn An`, `Tran Thi Le`: a name part, not a stop word
        if folded in _NAME_STOP or last in _PARTICLES:
            words.pop()
            continue
        break
    if not words:
        return None
    if weak and all(len(w[2].rstrip(".")) < 2 for w in words):
        return None  # initials alone
    if weak and all(_is_upper(w[2]) for w in words):
        # upper case: a name of two words or more (`JANE CITIZEN`), or one after a title
        # (`Mr SMITH`); one upper-case word after `customer` is an acronym (`API`)
        if len(words) < 2 and not honorific:
            return None
        if any(w[2].rstrip(".").casefold() in _NAME_STOP - _NAME_PART_STOPS for w in words):
            return None
    end = words[-1][1]
    while end > words[-1][0] + 2 and text[end - 1] in ".'’-":
        end -= 1  # sentence punctuation, not part of the name
    return base + words[0][0], base + end


_PARTICLES: Final = frozenset({"van", "von", "de", "da", "di", "del", "der", "le", "la"})


def _h_name(*, weak: bool) -> _Handler:
    def handle(r: Redactor, m: re.Match[str]) -> str | None:
        label = m["l"] if weak else ""
        if weak and label.lower() == "name" and _prev_is_name_ops(m.string, m.start()):
            return None
        honorific = label.rstrip(".").casefold() in _HONORIFICS
        value, base = m["v"], m.start("v")
        spans: list[tuple[int, int]] = []
        pos = 0
        for sep in [*_NAME_LIST_SPLIT.finditer(value), None]:
            part_end = sep.start() if sep else len(value)
            part = value[pos:part_end]
            if spans and part[:1].isupper() != value[:1].isupper():
                break  # after `full name: Jane Citizen,` a lower-case word is not a name
            # after the first name of a list, even a strong label's, a stop word ends it
            span = _trimmed_name(part, base + pos, weak=weak or bool(spans), honorific=honorific)
            if span is None:
                break  # `customer Jane Citizen, Loan pending`: the list ends here
            spans.append(span)
            if sep is None or span[1] < base + part_end:
                break  # a stop word cut the name short: what follows is not a name
            pos = sep.end()
        if not spans:
            return None
        out = m.group()
        for start, end in reversed(spans):
            token = r.token("NAME", _norm_name(m.string[start:end]))
            out = out[: start - m.start()] + token + out[end - m.start() :]
        return out

    return handle


def _prev_is_name_ops(text: str, start: int) -> bool:
    m = _PREV_WORD.search(text, max(0, start - 48), start)
    return m is not None and m.group(1).lower().rstrip("_-") in _NAME_OPS_PREFIX


_STRONG_GAP = rf"{_Q}{_SP}*(?:[:=]|(?i:is)(?={_SP})){_SP}*{_Q}{_SP}*"
_WEAK_GAP = rf"{_Q}{_SP}*(?:[:=]{_SP}*|(?i:is){_SP}+|[-–—]{_SP}+)?{_Q}{_SP}*(?:[<(]|&lt;)?{_Q}"
_ACCOUNT_VALUE = r"(?:[0-9]{4}[ -][0-9]{4}|[0-9]{3}[ -][0-9]{3}[ -][0-9]{3}|[0-9]{6,10})(?![0-9])"
_NUM_SEP = r"[ \u00a0-]"
# A card's groups may also be split by a tab, a line break, `.`, `/`, `_` or ` - ` (a
# try-out stored `4111.1111.1111.1111` unmasked): the Luhn and network checks keep the
# wider net off versions, addresses and dates.
_CARD_SEP = r"(?: - |[ \u00a0\t\n./_-])"

# Street addresses (AU, NZ, UK, US): a number (with a unit or level before it, `4/12`,
# `12-14`, `221B`), one to four capitalised words of street name, a street type, then
# what follows of a directional, suburb or city, state and postcode. `PO Box 12` with a
# locality, state or postcode too. The whole address is one token.
_STREET_TYPE = (
    r"(?i:street|st|road|rd|avenue|ave|av|drive|dr|drv|court|ct|place|pl|crescent|cres|crs"
    r"|lane|ln|way|wy|boulevard|blvd|bvd|highway|hwy|parade|pde|terrace|tce|close|cl"
    r"|circuit|cct|esplanade|esp|grove|gr|gve|square|sq|parkway|pkwy|circle|cir|trail|trl"
    r"|mews|rise|walk|promenade|quay|wharf|gardens|gdns|heights|hts|ridge|alley"
    r"|broadway|strand|glade|grange)"
)
_STREET_TYPE_WORDS: Final = (
    "street st road rd avenue ave av drive dr drv court ct place pl crescent cres crs lane"
    " ln way wy boulevard blvd bvd highway hwy parade pde terrace tce close cl circuit cct"
    " esplanade esp grove gr gve square sq parkway pkwy circle cir trail trl mews rise walk"
    " promenade quay wharf gardens gdns heights hts ridge alley broadway strand glade"
    " grange box"
)
_UNIT_PREFIX = (
    rf"(?:(?i:unit|apt|apartment|flat|suite|ste|shop|level|lvl|lot)\.?{_SP}*"
    rf"(?:[0-9]{{1,4}}[A-Za-z]?,?{_SP}+)?)"
)
_HOUSE_NUMBER = r"[0-9]{1,5}[A-Za-z]?(?:[/-][0-9]{1,5}[A-Za-z]?)?"
_STREET_WORD = r"(?:[A-Z][A-Za-z'’-]*|[0-9]{1,3}(?i:st|nd|rd|th))"
_PLACE_WORD = r"(?:[A-Z][a-z'’.-]+|St\.?)"
_STATE = (
    r"(?:NSW|VIC|Vic|QLD|Qld|SA|WA|TAS|Tas|NT|ACT|A\.C\.T\.|"
    r"A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI"
    r"|S[CD]|T[NX]|UT|V[AT]|W[AIVY])(?![A-Za-z])"
)
_POSTCODE = (
    r"(?:[0-9]{5}(?:-[0-9]{4})?|[0-9]{4}"
    rf"|[A-Z]{{1,2}}[0-9][A-Z0-9]?{_SP}?[0-9][A-Z]{{2}})(?![0-9A-Za-z])"
)
_LOCALITY = (  # suburb, then city (NZ: `Ponsonby, Auckland 1011`)
    rf"(?:,?{_SP}+{_PLACE_WORD}(?:{_SP}+{_PLACE_WORD}){{0,3}}){{0,2}}"
    rf"(?:,?{_SP}+{_STATE})?(?:,?{_SP}+{_POSTCODE})?"
)
_ADDRESS = (
    rf"(?<![\w/.#@:+-])(?P<v>{_UNIT_PREFIX}?{_HOUSE_NUMBER}{_SP}+"
    rf"(?:{_STREET_WORD}{_SP}+){{1,4}}?{_STREET_TYPE}\.?(?![A-Za-z0-9])"
    rf"(?:{_SP}+(?:N|S|E|W|NE|NW|SE|SW)(?![A-Za-z]))?{_LOCALITY}"
    rf"|(?i:p\.?{_SP}?o\.?{_SP}*box){_SP}*[0-9]{{1,6}}"
    rf"(?:,?{_SP}+{_PLACE_WORD}(?:{_SP}+{_PLACE_WORD}){{0,3}})?"
    rf"(?:,?{_SP}+{_STATE})?,?{_SP}+{_POSTCODE})"
)
_ADDRESS_PUNCT = re.compile(r"[,.]")


def _h_address(r: Redactor, m: re.Match[str]) -> str | None:
    value = m["v"].rstrip(",. ")
    norm = " ".join(_ADDRESS_PUNCT.sub(" ", value).casefold().split())
    return _swap(m, m.start("v"), m.start("v") + len(value), r.token("ADDRESS", norm))


_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "email",
        r"(?<![A-Za-z0-9._%+-])(?P<v>[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
        r"\.[A-Za-z]{2,24})(?![A-Za-z0-9-])",
        _h_email,
        "at",
    ),
    _Rule(  # before the phone and card shapes, which would bite into its digit groups
        "iban",
        rf"(?<![\w/.#@+$%-])(?P<v>[A-Za-z]{{2}}[0-9]{{2}}(?:{_SP}?[A-Za-z0-9]{{4}}){{2,7}}"
        rf"(?:{_SP}?[A-Za-z0-9]{{1,3}})?)(?![\w/@-])",
        _h_iban,
        "iban",
    ),
    # ---- labelled forms first: the label makes them certain
    _Rule(
        "bsb",
        rf"{_L_BSB}{_GAP}(?P<b>[0-9]{{3}}[ -]?[0-9]{{3}})(?![0-9])"
        rf"(?:[,;/]?{_SP}*(?:{_L_ACCOUNT}{_GAP})?(?P<a>{_ACCOUNT_VALUE}))?",
        _h_bank,
        "words",
        "bsb",
    ),
    _Rule(
        "card_labelled",
        rf"{_L_CARD}{_GAP}(?P<v>[0-9](?:{_CARD_SEP}?[0-9]){{12,18}})(?![0-9])",
        _h_card_labelled,
        "words",
        "card cards cc pan visa master mastercard amex american diners jcb maestro unionpay"
        " discover creditcard cardnumber cardno",
    ),
    _Rule(
        "ssn_labelled",
        rf"{_L_SSN}{_GAP}(?P<v>[0-9]{{3}}[ -]?[0-9]{{2}}[ -]?[0-9]{{4}})(?![0-9])",
        _h_labelled("SSN", (9,)),
        "words",
        "ssn social",
    ),
    _Rule(
        "tfn_labelled",
        rf"{_L_TFN}{_GAP}(?P<v>[0-9]{{3}}{_NUM_SEP}?[0-9]{{3}}{_NUM_SEP}?[0-9]{{2,3}})(?![0-9])",
        _h_labelled("TFN", (8, 9)),
        "words",
        "tfn tax taxfile taxfilenumber",
    ),
    _Rule(
        "medicare_labelled",
        rf"{_L_MEDICARE}{_GAP}(?P<v>[0-9]{{4}}{_NUM_SEP}?[0-9]{{5}}{_NUM_SEP}?[0-9]"
        rf"(?:[ /-]?[0-9])?)(?![0-9])",
        _h_labelled("MEDICARE", (10, 11)),
        "words",
        "medicare",
    ),
    _Rule(
        "account_labelled",
        rf"{_L_ACCOUNT}{_GAP}(?P<v>{_ACCOUNT_VALUE})",
        _h_account,
        "words",
        "account accounts acct acc accountnumber accountno bankaccount",
        also=("a/c",),
    ),
    _Rule(
        "phone_labelled",
        rf"{_L_PHONE}{_GAP}(?P<v>\+?[0-9(][0-9 ().\u00a0-]{{6,18}}[0-9])(?![0-9])",
        _h_phone_labelled,
        "words",
        "phone ph tel telephone mobile mob cell cellphone landline fax sms whatsapp"
        " phonenumber mobilephone",
    ),
    _Rule(
        "dob",
        rf"{_L_DOB}{_GAP}(?P<v>{_DATE})(?!T[0-9]|{_SP}?[0-9]{{1,2}}:[0-9]{{2}})",
        _h_dob,
        "words",
        "dob birth born birthdate birthday dateofbirth",
        also=("d.o.b",),
    ),
    _Rule(
        "income",
        rf"(?P<l>{_L_INCOME}){_GAP}(?P<v>{_AMOUNT}(?:{_SP}*(?:-|–|to){_SP}*{_AMOUNT})?{_PERIOD})"
        r"(?![-/:.][0-9]|T[0-9])",
        _h_income,
        "words",
        "income salary earnings earns earning wage wages annualincome grossincome",
    ),
    _Rule(
        "credit_score",
        rf"{_L_CREDIT}{_GAP}(?P<v>(?P<s>[0-9]{{1,4}})"
        rf"(?:{_SP}*(?:/|out{_SP}+of){_SP}*[0-9]{{3,4}})?)(?![0-9]|[-.,:/][0-9]|{_SP}?%)",
        _h_credit,
        "words",
        "credit bureau equifax experian illion veda vedascore fico creditscore",
    ),
    _Rule(  # before the names: `12 Example Dr` is a street, not a doctor
        "address",
        _ADDRESS,
        _h_address,
        "words",
        _STREET_TYPE_WORDS,
    ),
    _Rule(
        "name_strong",
        rf"{_L_NAME_STRONG}{_STRONG_GAP}(?P<v>{_STRONG_NAME_VALUE})",
        _h_name(weak=False),
        "words",
        "name names surname forename forenames fullname nameoncard",
    ),
    _Rule(
        "name_weak",
        rf"(?P<l>{_L_NAME_WEAK}){_WEAK_GAP}(?P<v>{_WEAK_NAME_VALUE})",
        _h_name(weak=True),
        "words",
        "name customer applicant coapplicant borrower coborrower guarantor client cardholder"
        " holder beneficiary payee nominee spouse names customers applicants coapplicants"
        " borrowers coborrowers guarantors clients cardholders holders beneficiaries payees"
        " nominees spouses",
        honorifics=True,
    ),
    # ---- unlabelled forms: shape, checksum and context decide
    # grouped cards first: a phone pattern would otherwise bite into `3600 020000 0006`
    _Rule(
        "card_grouped",
        rf"{_NUM_START}(?P<v>[0-9]{{4}}(?P<s>{_CARD_SEP})[0-9]{{4}}(?P=s)[0-9]{{4}}(?P=s)"
        rf"[0-9]{{1,4}}(?:(?P=s)[0-9]{{1,3}})?|[0-9]{{4}}(?P<t>{_CARD_SEP})[0-9]{{6}}(?P=t)"
        rf"[0-9]{{4,5}}){_NUM_END}",
        _h_card(contiguous=False),
        "digits",
    ),
    _Rule(
        "phone_international",
        r"(?<![\w+/#@.])(?P<v>(?:\+|\b0061)[1-9](?:[ .-]?\(?[0-9]\)?){6,14})"
        r"(?![0-9]|[.,][0-9])",
        _h_phone(),
        "digits",
    ),
    _Rule(
        "phone_au",
        rf"{_NUM_START}(?P<v>\(0[2-578]\){_SP}?[0-9]{{4}}[ -]?[0-9]{{4}}"
        r"|0[2-578][ -]?[0-9]{4}[ -]?[0-9]{4}"
        rf"|0[45][0-9]{{2}}[ -]?[0-9]{{3}}[ -]?[0-9]{{3}}){_NUM_END}",
        _h_phone(),
        "digits",
    ),
    _Rule(
        "phone_us",
        rf"(?<![\w/.#@+$%-])(?P<v>\([2-9][0-9]{{2}}\){_SP}?[0-9]{{3}}[ .-][0-9]{{4}}"
        r"|(?:1[ .-])?[2-9][0-9]{2}(?P<s>[.-])[0-9]{3}(?P=s)[0-9]{4})" + _NUM_END,
        _h_phone(),
        "digits",
    ),
    _Rule(
        "ssn",
        rf"{_NUM_START}(?P<v>[0-9]{{3}}(?P<s>[- ])[0-9]{{2}}(?P=s)[0-9]{{4}}){_NUM_END}",
        _h_ssn(sequence=True),
        "digits",
    ),
    _Rule(
        "bsb_bare",
        rf"{_NUM_START}(?P<b>[0-9]{{3}}-[0-9]{{3}})[,;]?{_SP}+(?:{_L_ACCOUNT}{_GAP})?"
        rf"(?P<a>{_ACCOUNT_VALUE}){_NUM_END}",
        _h_bank_bare,
        "digits",
    ),
    _Rule(
        "medicare_spaced",
        rf"{_NUM_START}(?P<v>[2-6][0-9]{{3}}(?P<s>{_NUM_SEP})[0-9]{{5}}(?P=s)[0-9]"
        rf"(?:(?P=s)?[0-9])?){_NUM_END}",
        _h_medicare(sequence=True),
        "digits",
    ),
    _Rule(
        "tfn_spaced",
        rf"{_NUM_START}(?P<v>[0-9]{{3}}(?P<s>{_NUM_SEP})[0-9]{{3}}(?P=s)[0-9]{{3}}){_NUM_END}",
        _h_tfn(sequence=True),
        "digits",
    ),
    _Rule(
        "phone_us_spaced",
        rf"{_NUM_START}(?P<v>[2-9][0-9]{{2}} [0-9]{{3}} [0-9]{{4}}){_NUM_END}",
        _h_phone(bare=True, sequence=True),
        "digits",
    ),
    _Rule(
        "card",
        rf"{_NUM_START}(?P<v>[0-9]{{13,16}}){_NUM_END}",
        _h_card(contiguous=True),
        "digits",
    ),
    _Rule(
        "medicare",
        rf"{_NUM_START}(?P<v>[2-6][0-9]{{9,10}}){_NUM_END}",
        _h_medicare(sequence=False),
        "digits",
    ),
    _Rule(
        "tfn",
        rf"{_NUM_START}(?P<v>[0-9]{{9}}){_NUM_END}",
        _h_tfn(sequence=False),
        "digits",
    ),
)

# Gate indexes: which rules each cheap test switches on (by position, so order is kept).
_AT_RULES: Final = tuple(i for i, r in enumerate(_RULES) if r.gate == "at")
_DIGIT_RULES: Final = tuple(i for i, r in enumerate(_RULES) if r.gate == "digits")
_WORD_RULES: Final = {
    word: tuple(i for i, r in enumerate(_RULES) if word in r.words)
    for word in {w for r in _RULES for w in r.words}
}
_LABEL_WORDS: Final = frozenset(_WORD_RULES)
_ALSO_RULES: Final = {
    re.compile("|".join(re.escape(a) for a in r.also), re.IGNORECASE): (i,)
    for i, r in enumerate(_RULES)
    if r.also
} | {
    _HONORIFIC: tuple(i for i, r in enumerate(_RULES) if r.honorifics),
    # an IBAN's digits may be too few, or too many in one run, for the digit gate
    _IBAN_GATE: tuple(i for i, r in enumerate(_RULES) if r.gate == "iban"),
    # `b. 1980-06-04`: `b` alone is too common a word (`GiB`) to gate on
    _BORN_ABBREV: tuple(i for i, r in enumerate(_RULES) if r.name == "dob"),
}


# --------------------------------------------------------------------------- redactor


class Redactor:
    """Masks PII in text with keyed tokens. Thread-safe; holds no PII between calls."""

    __slots__ = ("_mac", "_replacers", "ephemeral_key")

    def __init__(self, key: bytes | None = None) -> None:
        """`key` None: take `AIOPS_PII_KEY` from the environment, else a random key."""
        self.ephemeral_key = False
        if key is None:
            env = os.environ.get(KEY_ENV, "")
            if env:
                key = env.encode("utf-8", "surrogatepass")
            else:
                key = secrets.token_bytes(32)
                self.ephemeral_key = True
        if not key:
            raise ValueError("the PII key must not be empty")
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._replacers = {rule.name: self._replacer(rule) for rule in _RULES}

    def __repr__(self) -> str:
        return f"Redactor(ephemeral_key={self.ephemeral_key})"

    def token(self, kind: str, normalised: str) -> str:
        """The token for a value already normalised for its kind."""
        mac = self._mac.copy()
        mac.update(kind.encode("ascii") + b"\x00" + normalised.encode("utf-8", "surrogatepass"))
        return f"[{kind}:{mac.hexdigest()[:TOKEN_HEX]}]"

    def redact(self, text: str) -> str:
        """`text` with every PII value replaced by its token or band."""
        if not text:
            return text
        out = self._pass(text)
        # A mask can change the context of a neighbour (a row of numbers, a label), so
        # repeat until nothing moves: that makes redaction idempotent by construction.
        previous = text
        rounds = 0
        while out != previous and rounds < 4:
            previous, out = out, self._pass(out)
            rounds += 1
        return out

    def _pass(self, text: str) -> str:
        rules = self._rules_for(text)
        if not rules:
            return text
        spans = _protected(text)
        if not spans:
            return self._apply(rules, text)
        parts: list[str] = []
        pos = 0
        for start, end in spans:
            parts.append(self._apply(rules, text[pos:start]))
            parts.append(text[start:end])
            pos = end
        parts.append(self._apply(rules, text[pos:]))
        return "".join(parts)

    @staticmethod
    def _rules_for(text: str) -> list[_Rule]:
        """The rules that could match: cheap tests on the whole text, once."""
        chosen: set[int] = set()
        if "@" in text:
            chosen.update(_AT_RULES)
        if _has_numeric_candidate(text):
            chosen.update(_DIGIT_RULES)
        for word in _LABEL_WORDS.intersection(map(str.lower, _GATE_WORDS.findall(text))):
            chosen.update(_WORD_RULES[word])
        for also in _ALSO_RULES:
            if also.search(text):
                chosen.update(_ALSO_RULES[also])
        return [_RULES[i] for i in sorted(chosen)]

    def _apply(self, rules: list[_Rule], text: str) -> str:
        for rule in rules:
            if len(text) < 6:
                break
            text = rule.pattern.sub(self._replacers[rule.name], text)
        return text

    def _replacer(self, rule: _Rule) -> Callable[[re.Match[str]], str]:
        handler = rule.handler

        def replace(m: re.Match[str]) -> str:
            out = handler(self, m)
            return m.group() if out is None else out

        return replace

    def redact_value(self, obj: Any, key: str | None = None) -> Any:
        """Redact strings inside dicts / lists / tuples; a dict key labels its value.

        `{"name": "Jane Citizen"}` is read as `name: Jane Citizen`, so the key gives the
        context a bare value lacks. Numbers that turn out to be PII come back as their
        masked string; other numbers, booleans, None and unknown objects are unchanged.
        """
        if isinstance(obj, str):
            return self._redact_under(obj, key)
        if obj is None or isinstance(obj, bool):
            return obj
        if isinstance(obj, int | float):
            text = str(obj)
            masked = self._redact_under(text, key)
            return obj if masked == text else masked
        if isinstance(obj, Mapping):
            return {
                (self.redact(k) if isinstance(k, str) else k): self.redact_value(
                    v, k if isinstance(k, str) else None
                )
                for k, v in obj.items()
            }
        if isinstance(obj, list):
            return [self.redact_value(v, key) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.redact_value(v, key) for v in obj)
        return obj

    def _redact_under(self, value: str, key: str | None) -> str:
        if key and _KEY_AS_LABEL.fullmatch(key):
            prefix = f"{key}: "
            masked = self.redact(prefix + value)
            if masked.startswith(prefix):
                return masked[len(prefix) :]
        return self.redact(value)


_KEY_AS_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9 _.-]{0,40}")

_default: Redactor | None = None
_default_lock = threading.Lock()


def default_redactor() -> Redactor:
    """The process-wide redactor, keyed by `AIOPS_PII_KEY` (read on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Redactor()
                if _default.ephemeral_key:
                    _log.warning(
                        "%s is not set: PII tokens use a random per-process key and will"
                        " not correlate across processes or restarts",
                        KEY_ENV,
                    )
    return _default


def use_default(redactor: Redactor) -> bool:
    """Make `redactor` the process-wide one, if none was made yet (True: it now is). For
    the console's demo key (`bot/cli/console.py`), installed before anything is masked."""
    global _default
    with _default_lock:
        if _default is not None:
            return False
        _default = redactor
        return True


def redact(text: str) -> str:
    """Mask PII in `text` with the default redactor."""
    return default_redactor().redact(text)


def redact_value(obj: Any) -> Any:
    """Mask PII in a JSON-like value (dicts, lists, strings) with the default redactor."""
    return default_redactor().redact_value(obj)


def redact_stream(inp: TextIO, out: TextIO, *, redactor: Redactor | None = None) -> int:
    """Copy `inp` to `out` a line at a time, redacted, flushing each line.

    Returns the number of lines processed. This is `aiops-bot redact`.
    """
    r = redactor or default_redactor()
    count = 0
    for line in iter(inp.readline, ""):
        out.write(r.redact(line))
        out.flush()
        count += 1
    return count


class RedactingFilter(logging.Filter):
    """A logging filter that masks PII in every record it sees.

    Install it on handlers (`handler.addFilter(RedactingFilter())`). It formats the
    message with its arguments, redacts the result, and stores it back as `msg` with no
    `args`. A traceback is rendered and redacted into `exc_text` (which
    `logging.Formatter` prints) and `exc_info` is dropped, so that no formatter renders
    the raw exception again — a custom formatter must print `exc_text`; pass
    `drop_exc_info=False` to keep `exc_info` for one that redacts by itself.
    `stack_info` is redacted too. Fields passed through `extra=` are not touched.
    """

    def __init__(
        self, redactor: Redactor | None = None, name: str = "", *, drop_exc_info: bool = True
    ) -> None:
        super().__init__(name)
        self._redactor = redactor
        self._drop_exc_info = drop_exc_info

    def filter(self, record: logging.LogRecord) -> bool:
        r = self._redactor or default_redactor()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not let the arguments through raw
            message = f"{record.msg!s} {record.args!r}"
        record.msg = r.redact(message)
        record.args = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if self._drop_exc_info:
                record.exc_info = None
        if record.exc_text:
            record.exc_text = r.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = r.redact(record.stack_info)
        return True
