# TaskHub production image: gunicorn for web; the same image runs the Celery worker and beat.
FROM python:3.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TASKHUB_VAR_DIR=/app/var \
    STATIC_ROOT=/app/static \
    MEDIA_ROOT=/app/var/media \
    WEB_CONCURRENCY=2 \
    GUNICORN_THREADS=4

RUN groupadd --system taskhub && useradd --system --gid taskhub --home-dir /app taskhub

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic only reads settings; the key is a placeholder that never reaches a running container.
RUN SECRET_KEY=collectstatic-only DEBUG=0 python manage.py collectstatic --noinput -v 0 \
    && mkdir -p /app/var/media \
    && chown -R taskhub:taskhub /app/var

USER taskhub
EXPOSE 8000

# gunicorn's processes share request metrics through PROMETHEUS_MULTIPROC_DIR, emptied at start;
# each request is logged by the app (JSON, with its request id), so gunicorn keeps no access log.
CMD ["sh", "-c", "export PROMETHEUS_MULTIPROC_DIR=\"${PROMETHEUS_MULTIPROC_DIR:-/tmp/taskhub-prometheus}\" && rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec gunicorn taskhub.wsgi --bind 0.0.0.0:8000 --workers \"$WEB_CONCURRENCY\" --threads \"$GUNICORN_THREADS\" --error-logfile -"]
