# One image for every Rapport service; the service is the command:
#   docker build -t rapport:0.1.0 .
#   docker run rapport:0.1.0 services.scoring      (services.monitor, services.canary, ...)
# Multi-stage: dependencies are built from requirements.lock in a builder; the runtime stage holds
# the virtualenv and the code only, runs as an unprivileged user and works on a read-only root
# filesystem (writable: the data folder a deployment mounts, /var/lib/rapport).

FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/rapport
COPY pyproject.toml README.md requirements.lock ./
COPY shared ./shared
COPY services ./services
# Runtime dependencies only (no dev tools), at the versions requirements.lock pins.
RUN /opt/rapport/bin/pip install -c requirements.lock ".[rocksdb]" \
 && /opt/rapport/bin/python -m compileall -q /opt/rapport

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/rapport/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 rapport \
 && useradd --system --uid 10001 --gid rapport --no-create-home --home-dir /nonexistent rapport \
 && install -d -o rapport -g rapport -m 0750 /var/lib/rapport
COPY --from=builder /opt/rapport /opt/rapport
WORKDIR /var/lib/rapport
USER 10001:10001
EXPOSE 6061 6062 6063
ENTRYPOINT ["python", "-m"]
CMD ["services.scoring"]
