"""The Jinja2 environment: NHS.UK frontend macros on the loader path, Django's url and static
helpers, and a few display filters."""

from django.contrib import messages
from django.templatetags.static import static
from django.urls import reverse
from jinja2 import ChainableUndefined, ChoiceLoader, Environment, PackageLoader

from accounts.display import format_date, format_datetime, format_nhs_number, format_time

from .form_fields import choice_items, field_params


def url(name: str, *args, **kwargs) -> str:
    return reverse(name, args=args or None, kwargs=kwargs or None)


def environment(**options) -> Environment:
    options["loader"] = ChoiceLoader(
        [options["loader"], PackageLoader("nhsuk_frontend_jinja", "templates")]
    )
    # The NHS.UK macros read nested optional parameters (params.search.action) as Nunjucks does.
    options["undefined"] = ChainableUndefined
    options["extensions"] = [*options.get("extensions", []), "jinja2.ext.do"]
    env = Environment(**options)  # noqa: S701 - Django's backend sets autoescape=True
    env.globals.update(
        {
            "url": url,
            "static": static,
            "get_messages": messages.get_messages,
            "field_params": field_params,
            "choice_items": choice_items,
        }
    )
    env.filters.update(
        {
            "nhs_number": format_nhs_number,
            "date": format_date,
            "datetime": format_datetime,
            "time": format_time,
        }
    )
    return env
