# The one haul image: worker, api (the failure inbox, port 8080), migrate and the Locust load
# generator, from the built wheel (the Locust scenarios ship inside it, in app/loadtest).
# Build from the repository root: docker build -t haul:0.1.0 .
# Base image pin: app/versions.py PYTHON_IMAGE (tests/infra checks they agree).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m pip install --no-cache-dir "build==1.6.1"
COPY pyproject.toml README.md ./
COPY app ./app
# SQL and CQL migrations ship in the wheel (data-files), for the migrate entrypoint.
COPY migrations ./migrations
RUN python -m build --wheel --outdir /dist .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/haul \
    PATH=/opt/haul/bin:$PATH \
    HAUL_WORKER_HEALTH_PORT=9090
RUN groupadd --system --gid 10001 haul \
    && useradd --system --uid 10001 --gid haul --home-dir /home/haul --create-home haul
COPY --from=build /dist/ /tmp/wheels/
RUN python -m venv /opt/haul \
    && /opt/haul/bin/pip install --no-cache-dir /tmp/wheels/haul-*.whl \
    && rm -rf /tmp/wheels
COPY --chmod=0755 infra/image/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER 10001:10001
WORKDIR /home/haul
EXPOSE 9090 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HAUL_WORKER_HEALTH_PORT', '9090') + '/healthz', timeout=3)"]
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["worker"]
