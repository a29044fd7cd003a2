"""Renders an outcome letter: its context to HTML with the letter template, and that HTML to a
tagged, accessible PDF (PDF/UA-1) with WeasyPrint.

The HTML document carries its own print stylesheet, so the stored HTML alone decides the PDF, and
WeasyPrint fetches nothing: the letter has no external resources and no URL is ever followed."""

from django.template.loader import get_template

DOCUMENT_TEMPLATE = "letters/outcome_letter.jinja"
# The letter's content alone, for a preview inside a page of the app (which links
# static/css/letter-preview.css: the app's CSP allows no inline styles).
FRAGMENT_TEMPLATE = "letters/partials/letter_body.jinja"
PDF_VARIANT = "pdf/ua-1"


def render_letter_html(context: dict, *, fragment: bool = False) -> str:
    """The letter as a whole HTML document for the PDF, or (``fragment``) as an ``<article>``
    for a page of the app, under that page's own h1 (so the letter's headings start at h2)."""
    template = get_template(FRAGMENT_TEMPLATE if fragment else DOCUMENT_TEMPLATE, using="jinja2")
    return template.render({"letter": context, "top": 2 if fragment else 1})


def render_letter_pdf(html: str, *, title: str, author: str) -> bytes:
    """PDF/UA-1: tagged structure, document language from ``<html lang>``, the title shown by
    viewers, and the title and author in both the document information and XMP metadata."""
    # Imported here: WeasyPrint parses its stylesheets at import (seconds), and every process
    # that loads the Celery tasks would pay for it, rendering or not.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    # No protocol allowed: any URL in the HTML is refused instead of fetched.
    fetcher = URLFetcher(allowed_protocols=())
    document = HTML(string=html, url_fetcher=fetcher).render(pdf_variant=PDF_VARIANT)
    document.metadata.title = title
    document.metadata.authors = [author]
    return document.write_pdf(pdf_variant=PDF_VARIANT)
