# The pvwatch image that docker-compose.yml runs: `pvwatch worker` against Apache Kafka, and `pvwatch dashboard`.
# /etc/pvwatch (users file, audit log) is created owned by the service user so a fresh named volume inherits it.
# /etc/pvwatch-rules holds a copy of the packaged rules file: a fresh named volume mounted there starts with it,
# the dashboard's admins edit it on /admin/rules, and the worker reads it at its next start (PVWATCH_RULES_FILE).
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
    && useradd --system --uid 10001 --home-dir /var/lib/pvwatch --create-home pvwatch \
    && install -d -o pvwatch -g pvwatch -m 0750 /etc/pvwatch \
    && install -d -o pvwatch -g pvwatch -m 0750 /etc/pvwatch-rules \
    && python -c "from importlib.resources import files; print(files('pvwatch') / 'rules.yaml')" \
       | xargs -I{} install -o pvwatch -g pvwatch -m 0640 {} /etc/pvwatch-rules/rules.yaml

USER pvwatch
WORKDIR /var/lib/pvwatch
EXPOSE 9464 8080
ENTRYPOINT ["pvwatch"]
CMD ["worker"]
