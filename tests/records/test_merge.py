import json

from records.merge import SECTIONS, merge
from records.normalise import KINDS, Item

SNOMED = "http://snomed.info/sct"


def item(kind, date, title, source="Trust A", codes=(), resource_id=None, **details):
    return Item(
        kind=kind,
        date=date,
        title=title,
        codes=[{"system": s, "code": c, "display": None} for s, c in codes],
        source=source,
        resource_type="Observation",
        resource_id=resource_id or f"{source}-{title}",
        details=details,
    )


def stage(group, kind="c", source="Trust A", date="2024-01-05", site_group=None, laterality=None):
    details = {"kind": kind, "group": group, "t": None, "n": None, "m": None}
    details.update(site_group=site_group, laterality=laterality)
    return Item(
        "stage", date, f"stage {group}", [], source, "Observation", f"{source}-{group}", details
    )


def diagnosis(site_group, role="primary", source="Trust A", laterality=None, date="2024-01-01"):
    return item(
        "diagnosis",
        date,
        f"{site_group} cancer",
        source,
        role=role,
        site_group=site_group,
        laterality=laterality,
    )


def test_timeline_is_sorted_by_date_with_undated_last():
    merged = merge(
        [
            item("encounter", None, "Clinic"),
            item("imaging", "2024-03-01", "CT chest"),
            item("diagnosis", "2023-12-01", "Lung cancer"),
        ]
    )
    assert [i.title for i in merged.timeline] == ["Lung cancer", "CT chest", "Clinic"]


def test_exact_duplicates_from_two_sources_collapse_keeping_both_sources():
    merged = merge(
        [
            item(
                "surgery",
                "2024-02-01",
                "Lobectomy of lung",
                "Trust A",
                resource_id="p1",
                status="completed",
            ),
            item(
                "surgery",
                "2024-02-01",
                "Lobectomy of lung",
                "Trust B",
                resource_id="x9",
                status="completed",
            ),
        ]
    )
    (only,) = merged.timeline
    assert only.sources == [
        {"source": "Trust A", "resource_type": "Observation", "resource_id": "p1"},
        {"source": "Trust B", "resource_type": "Observation", "resource_id": "x9"},
    ]


def test_the_same_code_under_different_titles_is_one_fact():
    merged = merge(
        [
            item("surgery", "2024-02-01", "Lobectomy", "Trust A", codes=[(SNOMED, "173171007")]),
            item(
                "surgery",
                "2024-02-01",
                "Lobectomy of lung",
                "Trust B",
                codes=[(SNOMED, "173171007")],
            ),
        ]
    )
    assert len(merged.timeline) == 1


def test_titles_differing_only_in_case_and_punctuation_are_one_fact():
    merged = merge(
        [
            item("comorbidity", "2020-01-01", "Type 2 diabetes mellitus", "Trust A"),
            item("comorbidity", "2020-01-01", "type 2  diabetes-mellitus", "Trust B"),
        ]
    )
    assert len(merged.timeline) == 1


def test_the_same_title_on_different_dates_is_not_a_duplicate():
    merged = merge(
        [
            item("imaging", "2024-01-01", "CT chest"),
            item("imaging", "2024-04-01", "CT chest", "Trust B"),
        ]
    )
    assert len(merged.timeline) == 2


def test_observations_with_different_values_are_not_duplicates():
    merged = merge(
        [
            item("observation", "2024-01-01", "Haemoglobin", value="120 g/L"),
            item("observation", "2024-01-01", "Haemoglobin", "Trust B", value="98 g/L"),
        ]
    )
    assert len(merged.timeline) == 2


def test_a_duplicate_fills_in_details_the_first_source_lacked():
    merged = merge(
        [
            item("imaging", "2024-01-01", "CT chest", performer=None),
            item(
                "imaging",
                "2024-01-01",
                "CT chest",
                "Trust B",
                performer=["Leeds Teaching Hospitals"],
            ),
        ]
    )
    assert merged.timeline[0].details["performer"] == ["Leeds Teaching Hospitals"]


def test_two_clinical_stage_groups_that_differ_are_a_conflict():
    merged = merge(
        [
            diagnosis("lung"),
            stage("IIIA", site_group="lung"),
            stage("IIIC", source="Trust B", site_group="lung"),
        ]
    )
    (conflict,) = merged.conflicts
    assert conflict.kind == "stage_group"
    assert conflict.description == (
        "Sources disagree on the clinical stage group of the lung cancer: "
        "IIIA (Trust A, 2024-01-05); IIIC (Trust B, 2024-01-05)."
    )
    assert [i.details["group"] for i in conflict.items] == ["IIIA", "IIIC"]


def test_a_clinical_and_a_pathological_stage_that_differ_are_not_a_conflict():
    merged = merge([diagnosis("lung"), stage("IIIA"), stage("IIB", kind="p", source="Trust B")])
    assert merged.conflicts == []


def test_equal_stage_groups_from_two_sources_are_one_item_and_no_conflict():
    merged = merge([stage("IIIC"), stage("IIIC", source="Trust B")])
    assert len(merged.timeline) == 1
    assert merged.conflicts == []


def test_stage_groups_of_different_tumours_are_not_a_conflict():
    merged = merge(
        [
            diagnosis("lung"),
            diagnosis("breast"),
            stage("IIIA", site_group="lung"),
            stage("IA", source="Trust B", site_group="breast"),
        ]
    )
    assert [c.kind for c in merged.conflicts] == ["primary_site"]


def test_left_and_right_breast_stages_are_different_tumours():
    merged = merge(
        [
            diagnosis("breast", laterality="left"),
            diagnosis("breast", laterality="right", source="Trust B"),
            stage("IIA", site_group="breast", laterality="left"),
            stage("IA", source="Trust B", site_group="breast", laterality="right"),
        ]
    )
    assert "stage_group" not in [c.kind for c in merged.conflicts]


def test_a_stage_without_a_site_is_the_same_tumour_when_there_is_one_primary_cancer():
    merged = merge(
        [diagnosis("lung"), stage("IIIA", site_group="lung"), stage("IIIC", source="Trust B")]
    )
    assert [c.kind for c in merged.conflicts] == ["stage_group"]


def test_stages_without_a_site_are_compared_when_there_is_no_diagnosis_at_all():
    assert [c.kind for c in merge([stage("IIIA"), stage("IIIC", source="Trust B")]).conflicts] == [
        "stage_group"
    ]


def test_a_stage_without_a_site_is_not_compared_when_there_are_two_primary_cancers():
    merged = merge(
        [
            diagnosis("lung"),
            diagnosis("prostate", role=None, source="Trust B"),
            stage("IIIA", site_group="lung"),
            stage("IIIC", source="Trust B"),
        ]
    )
    assert merged.conflicts == []


def test_two_different_primary_sites_are_a_conflict():
    merged = merge([diagnosis("lung"), diagnosis("breast", source="Trust B")])
    (conflict,) = merged.conflicts
    assert conflict.kind == "primary_site"
    assert conflict.description == (
        "Sources name different primary sites for the cancer: "
        "breast (Trust B, 2024-01-01); lung (Trust A, 2024-01-01)."
    )


def test_opposite_sides_of_one_primary_site_are_a_conflict():
    merged = merge(
        [
            diagnosis("lung", laterality="left"),
            diagnosis("lung", laterality="right", source="Trust B"),
        ]
    )
    assert [c.kind for c in merged.conflicts] == ["primary_site"]


def test_a_secondary_site_is_not_a_primary_site_conflict():
    merged = merge([diagnosis("lung"), diagnosis("brain", role="secondary", source="Trust B")])
    assert merged.conflicts == []


def test_the_same_primary_site_from_two_sources_is_not_a_conflict():
    merged = merge(
        [
            diagnosis("lung", laterality="left"),
            diagnosis("lung", source="Trust B", date="2024-01-03"),
        ]
    )
    assert merged.conflicts == []


def test_sections_place_every_kind_once():
    placed = [kind for kinds in SECTIONS.values() for kind in kinds]
    assert sorted(placed) == sorted(KINDS)


def test_sections_hold_the_items_of_their_kinds():
    merged = merge([diagnosis("lung"), stage("IIIA"), item("sact", "2024-02-01", "Carboplatin")])
    assert [i.kind for i in merged.sections["diagnosis_and_staging"]] == ["diagnosis", "stage"]
    assert [i.title for i in merged.sections["treatments"]] == ["Carboplatin"]
    assert merged.sections["documents"] == []


def test_the_merged_record_is_json_serialisable():
    merged = merge([diagnosis("lung"), stage("IIIA"), stage("IIIC", source="Trust B")])
    data = json.loads(json.dumps(merged.as_dict()))
    assert set(data) == {"timeline", "sections", "conflicts"}
    assert data["conflicts"][0]["items"][0]["sources"][0]["source"] == "Trust A"
