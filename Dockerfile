# The one image that web, worker and beat run (docker-compose.yml). Not built in CI: no Docker
# engine runs there; the Makefile is the tested path and this file mirrors it.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends \
      libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core nodejs npm postgresql-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN pip install --no-cache-dir uv==0.13.8 && UV_PROJECT_ENVIRONMENT=/app/.venv uv sync --frozen --no-dev
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN scripts/copy-assets.sh && .venv/bin/python manage.py collectstatic --noinput
ENV PATH="/app/.venv/bin:$PATH"
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
