"""Turns a Django bound field into the parameters of an NHS.UK frontend macro, so templates
keep the NHS components and forms keep Django's validation."""

from datetime import date, datetime, time


def _value(field) -> str:
    value = field.value()
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


def field_params(field, label: str, *, hint: str = "", label_classes: str = "", **extra) -> dict:
    params = {
        "id": field.id_for_label or f"id_{field.name}",
        "name": field.html_name,
        "label": {"text": label, "classes": label_classes} if label_classes else {"text": label},
        "value": _value(field),
    }
    if hint:
        params["hint"] = {"text": hint}
    if field.errors:
        params["errorMessage"] = {"text": " ".join(field.errors)}
    params.update(extra)
    return params


def choice_items(field) -> list[dict]:
    """Items for select/radios: the field's choices with the current value selected."""
    current = _value(field)
    items = []
    for value, text in field.field.choices:
        value = str(getattr(value, "value", value))
        items.append(
            {
                "value": value,
                "text": str(text),
                "selected": value == current,
                "checked": value == current,
            }
        )
    return items
