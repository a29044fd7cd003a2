"""TNM staging as values: reading T, N, M categories and stage groups written in the ways sources
write them (cT2a, pN1mi, 3C, Stage IIIC), checked against the UICC 8th edition value lists."""

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_FILE = Path(__file__).resolve().parent / "data" / "tnm_uicc8.json"
AXES = ("t", "n", "m")
KIND_NAMES = {
    "c": "clinical",
    "p": "pathological",
    "y": "post-therapy",
    "r": "recurrence",
    "a": "autopsy",
}

_PREFIX = r"(?P<prefix>y[cp]?|[ra][cp]?|[cp])?"
_CATEGORY = re.compile(
    _PREFIX + r"(?P<axis>[TNM])?(?P<value>X|is|a|0|[1-4](?:mi|[a-e][1-3]?)?)"
    r"(?:\((?P<qualifier>[^()]{1,6})\))?",
    re.IGNORECASE,
)
# In free text (a SNOMED display such as "American Joint Committee on Cancer cT3") the axis letter
# must be there and in capitals, so that ordinary words are not read as categories.
_CATEGORY_IN_TEXT = re.compile(
    r"(?<![A-Za-z])(?P<prefix>y[cp]?|[ra][cp]?|[cp])?(?P<axis>[TNM])"
    r"(?P<value>X|is|a|0|[1-4](?:mi|[a-e][1-3]?)?)(?![A-Za-z0-9])"
)
_GROUP = re.compile(_PREFIX + r"(?P<num>IV|I{1,3}|[0-4])(?P<sub>IS|S|[A-D][1-3]?)?", re.IGNORECASE)
_GROUP_IN_TEXT = re.compile(
    r"stage\s*(?:group\s*)?(?P<token>[0-4IVivycpr][0-9A-Da-dIiVvSs]*)", re.I
)
_ROMAN = {"0": "0", "1": "I", "2": "II", "3": "III", "4": "IV"}


class InvalidTnm(ValueError):
    """The message names the value and says why it was not accepted."""


@cache
def uicc8() -> dict:
    """The value lists, with the `source` they were taken from."""
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def values(axis: str) -> tuple[str, ...]:
    """The UICC 8th edition values of an axis: "t", "n", "m" or "group"."""
    key = "stage_groups" if axis == "group" else axis.lower()
    return tuple(uicc8()[key])


@dataclass(frozen=True)
class TnmCategory:
    axis: str  # "T", "N" or "M"
    value: str  # canonical, without prefix: "T2a", "N1mi", "M1c", "Tis"
    prefix: str = ""  # "", "c", "p", "yc", "yp", "y", "r", "a"...
    qualifier: str | None = None  # what was in brackets: "sn", "i+", "mol-", "f", "m"

    @property
    def kind(self) -> str | None:
        return stage_kind(self.prefix)

    def __str__(self) -> str:
        qualifier = f"({self.qualifier})" if self.qualifier else ""
        return f"{self.prefix}{self.value}{qualifier}"


def stage_kind(prefix: str | None) -> str | None:
    """The kind of staging a prefix stands for: y (post-therapy) wins over c or p."""
    prefix = (prefix or "").lower()
    for letter in ("y", "r", "a", "p", "c"):
        if letter in prefix:
            return letter
    return None


def parse_category(axis: str, text: str | None) -> TnmCategory | None:
    """A T, N or M category from text such as "cT2a", "T2A", "2a" (axis given), "pN0(sn)".

    None when the text holds no category of that axis, or its value is not UICC 8th edition."""
    axis = axis.upper()
    if axis not in ("T", "N", "M") or not text:
        return None
    match = _CATEGORY.fullmatch(re.sub(r"\s+", "", text))
    if match is None or (match["axis"] or axis).upper() != axis:
        match = next(
            (m for m in _CATEGORY_IN_TEXT.finditer(text) if m["axis"] == axis),
            None,
        )
        if match is None:
            return None
    raw = match["value"]
    value = axis + ("X" if raw.upper() == "X" else raw.lower())
    if value not in values(axis.lower()):
        return None
    qualifier = match.groupdict().get("qualifier")
    return TnmCategory(
        axis=axis,
        value=value,
        prefix=(match["prefix"] or "").lower(),
        qualifier=qualifier.strip() if qualifier else None,
    )


def _read_group(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    if "occult" in text.lower():
        return "", "Occult carcinoma"
    compact = re.sub(r"(?i)stage|group|\s+", "", re.sub(r"\([^()]*\)", "", text))
    for candidate in (compact, *_tokens_after_stage(text)):
        match = _GROUP.fullmatch(candidate)
        if match is None:
            continue
        num = _ROMAN.get(match["num"], match["num"].upper())
        sub = match["sub"] or ""
        group = num + (sub.lower() if num == "0" else sub.upper())
        if group in values("group"):
            return (match["prefix"] or "").lower(), group
    return None


def _tokens_after_stage(text: str) -> list[str]:
    return [m["token"].rstrip(".,;)") for m in _GROUP_IN_TEXT.finditer(text)]


def parse_stage_group(text: str | None) -> str | None:
    """A stage group from "IIIC", "3C" (AJCC code), "Stage IIIc", "pStage IIA1", "0is".

    Returns the canonical UICC 8th edition value without prefix ("IIIC"), or None."""
    read = _read_group(text)
    return read[1] if read else None


def is_valid(axis: str, value: str | None) -> bool:
    """Whether a value (in any of the spellings the parsers read) is in the UICC 8th edition lists.
    axis: "t", "n", "m" or "group"."""
    if axis == "group":
        return parse_stage_group(value) is not None
    return parse_category(axis, value) is not None


@dataclass(frozen=True)
class Stage:
    """A staging, compared by (kind, edition, t, n, m, group). T, N and M hold canonical values
    without prefix ("T3"); kind says whether it is clinical, pathological or post-therapy."""

    kind: str | None = None
    edition: str | None = None
    t: str | None = None
    n: str | None = None
    m: str | None = None
    group: str | None = None

    def key(self) -> tuple:
        return (self.kind, self.edition, self.t, self.n, self.m, self.group)

    @classmethod
    def from_text(
        cls,
        *,
        group: str | None = None,
        t: str | None = None,
        n: str | None = None,
        m: str | None = None,
        kind: str | None = None,
        edition: str | None = None,
    ) -> "Stage":
        """Reads each value; raises InvalidTnm naming the first value that is not UICC 8th edition.

        Without an explicit kind, the prefixes decide: any y makes it post-therapy, then any p
        (pathological staging often carries cM0), then c."""
        prefixes = []
        parsed = {}
        for axis, text in (("t", t), ("n", n), ("m", m)):
            if not text:
                parsed[axis] = None
                continue
            category = parse_category(axis, text)
            if category is None:
                raise InvalidTnm(
                    f"“{text}” is not a {axis.upper()} category of the UICC 8th edition."
                )
            parsed[axis] = category.value
            prefixes.append(category.prefix)
        canonical_group = None
        if group:
            read = _read_group(group)
            if read is None:
                raise InvalidTnm(f"“{group}” is not a stage group of the UICC 8th edition.")
            prefixes.append(read[0])
            canonical_group = read[1]
        return cls(
            kind=kind or stage_kind("".join(prefixes)),
            edition=edition,
            group=canonical_group,
            **parsed,
        )

    def describe(self) -> str:
        """For people: "T3 N3 M0, stage IIIC (clinical)"."""
        categories = " ".join(v for v in (self.t, self.n, self.m) if v)
        group = f"stage {self.group}" if self.group else ""
        text = ", ".join(part for part in (categories, group) if part) or "stage not given"
        kind = KIND_NAMES.get(self.kind or "")
        return f"{text} ({kind})" if kind else text
