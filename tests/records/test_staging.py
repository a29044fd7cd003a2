import json

import pytest

from records.staging import (
    DATA_FILE,
    InvalidTnm,
    Stage,
    TnmCategory,
    is_valid,
    parse_category,
    parse_stage_group,
    uicc8,
    values,
)


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("IIIC", "IIIC"),
        ("3C", "IIIC"),
        ("IIIc", "IIIC"),
        ("Stage IIIC", "IIIC"),
        ("stage 4b", "IVB"),
        ("1A1", "IA1"),
        ("IA3", "IA3"),
        ("IIA2", "IIA2"),
        ("IIIC1", "IIIC1"),
        ("0", "0"),
        ("0is", "0is"),
        ("0A", "0a"),
        ("IS", "IS"),
        ("pStage IIA", "IIA"),
        ("ypIIIB", "IIIB"),
        ("American Joint Committee on Cancer stage IIIC (qualifier value)", "IIIC"),
        ("Occult carcinoma", "Occult carcinoma"),
        ("IIIA (qualifier value)", "IIIA"),
        ("Stage IIB (AJCC 8th edition)", "IIB"),
    ],
)
def test_stage_groups_are_read_in_the_spellings_sources_use(text, group):
    assert parse_stage_group(text) == group


@pytest.mark.parametrize("text", [None, "", "V", "5", "IIIE", "IIIA3", "IVD", "T3", "unknown"])
def test_text_that_is_not_a_uicc8_stage_group_reads_as_none(text):
    assert parse_stage_group(text) is None


@pytest.mark.parametrize(
    ("axis", "text", "value", "prefix"),
    [
        ("t", "cT2a", "T2a", "c"),
        ("t", "T2A", "T2a", ""),
        ("t", "2a", "T2a", ""),
        ("t", "Tis", "Tis", ""),
        ("t", "TX", "TX", ""),
        ("t", "pT1mi", "T1mi", "p"),
        ("t", "ypT0", "T0", "yp"),
        ("t", "T4e", "T4e", ""),
        ("n", "pN1mi", "N1mi", "p"),
        ("n", "cN3", "N3", "c"),
        ("n", "N2c", "N2c", ""),
        ("m", "cM0", "M0", "c"),
        ("m", "M1c", "M1c", ""),
        ("m", "pM1d", "M1d", "p"),
        ("t", "American Joint Committee on Cancer cT3 (qualifier value)", "T3", "c"),
        ("t", "T3 (qualifier value)", "T3", ""),
    ],
)
def test_categories_are_read_with_their_prefix(axis, text, value, prefix):
    category = parse_category(axis, text)
    assert category is not None
    assert (category.value, category.prefix) == (value, prefix)


def test_a_bracketed_qualifier_is_kept_apart_from_the_value():
    assert parse_category("n", "pN0(sn)") == TnmCategory(
        axis="N", value="N0", prefix="p", qualifier="sn"
    )
    assert str(parse_category("m", "cM0(i+)")) == "cM0(i+)"


@pytest.mark.parametrize(
    ("axis", "text"),
    [
        ("t", "T5"),
        ("t", "T2f"),
        ("n", "N4"),
        ("m", "M2"),
        ("m", "MX"),
        ("t", "N1"),
        ("t", ""),
        ("x", "T1"),
    ],
)
def test_values_outside_the_uicc8_lists_read_as_none(axis, text):
    assert parse_category(axis, text) is None


def test_the_kind_of_a_category_comes_from_its_prefix():
    assert parse_category("t", "cT1").kind == "c"
    assert parse_category("t", "pT1").kind == "p"
    assert parse_category("t", "ypT1").kind == "y"
    assert parse_category("t", "T1").kind is None


@pytest.mark.parametrize(
    ("axis", "value", "valid"),
    [
        ("t", "T1c", True),
        ("t", "T9", False),
        ("n", "N3b", True),
        ("m", "M1a", True),
        ("group", "IVB", True),
        ("group", "VI", False),
    ],
)
def test_is_valid_checks_a_value_against_the_lists(axis, value, valid):
    assert is_valid(axis, value) is valid


def test_a_stage_read_from_text_equals_the_same_stage_written_canonically():
    read = Stage.from_text(group="3C", t="cT3", n="cN3", m="cM0", edition="8")
    assert read == Stage(kind="c", edition="8", t="T3", n="N3", m="M0", group="IIIC")
    assert read.key() == ("c", "8", "T3", "N3", "M0", "IIIC")


def test_pathological_staging_with_a_clinical_m_is_pathological():
    assert Stage.from_text(t="pT1b", n="pN0", m="cM0").kind == "p"


def test_post_therapy_prefix_makes_the_stage_post_therapy():
    assert Stage.from_text(t="ypT2", n="ypN0").kind == "y"


def test_stages_that_differ_in_any_part_are_not_equal():
    assert Stage.from_text(group="IIIA", kind="c") != Stage.from_text(group="IIIB", kind="c")
    assert Stage.from_text(group="IIIA", kind="c") != Stage.from_text(group="IIIA", kind="p")


def test_an_invalid_value_is_refused_with_a_message_naming_it():
    with pytest.raises(InvalidTnm, match="“T5” is not a T category of the UICC 8th edition"):
        Stage.from_text(t="T5")
    with pytest.raises(InvalidTnm, match="stage group"):
        Stage.from_text(group="IIIE")


def test_a_stage_describes_itself_for_people():
    assert Stage.from_text(group="3C", t="cT3", n="cN3", m="cM0").describe() == (
        "T3 N3 M0, stage IIIC (clinical)"
    )


def test_the_data_file_names_its_source_and_edition():
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert "UICC TNM Classification of Malignant Tumours, 8th edition" in data["source"]
    assert data["edition"] == "8"
    assert uicc8()["source"] == data["source"]


@pytest.mark.parametrize("axis", ["t", "n", "m"])
def test_every_listed_category_reads_as_itself(axis):
    for value in values(axis):
        assert parse_category(axis, value).value == value


def test_every_listed_stage_group_reads_as_itself():
    for value in values("group"):
        assert parse_stage_group(value) == value
