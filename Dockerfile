# The production image: API, worker and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    BROADCAST_DATA_DIR=/var/lib/broadcast
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY broadcast ./broadcast
COPY channels ./channels
COPY geo ./geo
COPY templates ./templates
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/broadcast --create-home broadcast
USER broadcast
EXPOSE 8000
CMD ["uvicorn", "broadcast.api.asgi:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
