# The pvwatch worker image that docker-compose.yml runs (`pvwatch worker` against Apache Kafka).
FROM python:3.11.9-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pvwatch/ pvwatch/
COPY events/ events/
COPY streams/ streams/
COPY store/ store/
COPY dashboards/ dashboards/
RUN pip install . && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/pvwatch --create-home pvwatch

USER pvwatch
WORKDIR /var/lib/pvwatch
EXPOSE 9464
ENTRYPOINT ["pvwatch"]
CMD ["worker"]
