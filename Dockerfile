# One image for every app process (web, migrate, pose workers, Celery worker and beat); see
# docker-compose.yml. Configuration comes from the environment at run time (rehab/settings.py).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/app/.venv/bin:$PATH \
    REHAB_VAR_DIR=/app/var \
    MPLCONFIGDIR=/tmp/matplotlib

# The PDF reports: WeasyPrint needs Pango and a font; their charts are drawn by Chromium (kaleido).
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium libpango-1.0-0 libpangoft2-1.0-0 \
        fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
ENV CHROMIUM_PATH=/usr/bin/chromium

RUN pip install --no-cache-dir uv==0.13.8

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes. mediapipe's own libraries
# (EGL/GLES) ship inside its wheel; the OpenCV build is the headless one (no libGL).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --no-cache

# The runtime code only (no .venv, var/, tests or .git from the build context).
COPY manage.py ./
COPY rehab ./rehab
COPY web ./web
COPY audit ./audit
COPY patients ./patients
COPY sessions ./sessions
COPY reports ./reports
COPY dashboard ./dashboard
COPY demo ./demo
COPY analysis ./analysis
COPY templates ./templates
COPY static ./static

# Static files are collected with the production storage (WhiteNoise's compressed manifest), the
# one the containers run with: its staticfiles.json must exist or every {% static %} fails.
# The key and host below exist only for this RUN; the real ones come from the environment.
RUN REHAB_ENV=production \
    DJANGO_SECRET_KEY=collectstatic-only-not-a-secret \
    DJANGO_ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput

# Non-root user. /app/var (REHAB_VAR_DIR) is writable by it; the collected static files inside
# it stay owned by root, read-only for the app.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home rehab \
    && mkdir -p /app/var \
    && chown rehab:rehab /app/var
USER rehab

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "rehab.asgi:application"]
