"""Counts the SQL queries of a request into an X-Query-Count header, when QUERY_COUNT_HEADER is
on (benchmarks). Off, it costs one settings read."""

from django.conf import settings
from django.db import connection


class QueryCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.QUERY_COUNT_HEADER:
            return self.get_response(request)
        count = 0

        def counter(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            response = self.get_response(request)
        response["X-Query-Count"] = str(count)
        return response
