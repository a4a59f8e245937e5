# One image recipe for every service; the build argument SERVICE picks which (smtp-edge, forwarder,
# cakemail-sandbox; the sandbox is a stand-in for the Cakemail API, never deploy it as production).
# Build from the repository root (the context needs requirements/, proto/ and services/):
#   docker build --build-arg SERVICE=smtp-edge -t REGISTRY/cakemail/smtp-edge:0.1.0 .
# Everything but the last few lines of each service's stage is shared, so the services cannot drift apart.
ARG PYTHON_IMAGE=python:3.11-slim
ARG SERVICE

# ---- builder: runtime dependencies in a venv, gRPC stubs generated from proto/ ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /build

# The runtime dependencies are requirements/runtime.lock, made by `make lock` from [project].dependencies of the one
# pyproject.toml: every package pinned and checked against its SHA-256 (--require-hashes), nothing resolved at build
# time, the same versions the tests ran with (docs/dependencies.md); a dependency the lock does not pin fails the
# build. The lock is copied into the image as /opt/venv/requirements.lock, the record of what it holds.
COPY requirements/runtime.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes -r runtime.lock \
 && cp runtime.lock /opt/venv/requirements.lock

# grpcio-tools lives in a throwaway venv, from requirements/codegen.lock (hashed, pinned to the runtime's grpcio and
# protobuf versions), so the generated code never needs a newer runtime than the one installed above.
COPY requirements/codegen.lock ./
COPY proto ./proto
RUN python -m venv /opt/tools \
 && /opt/tools/bin/pip install --require-hashes -r codegen.lock \
 && mkdir gen \
 && /opt/tools/bin/python -m grpc_tools.protoc -Iproto --python_out=gen --grpc_python_out=gen proto/cakemail/gateway/v1/*.proto \
 && find gen -mindepth 1 -type d -exec touch {}/__init__.py \;

# ---- runtime base: what every service's image holds ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin gateway
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /build/gen /app/gen
COPY services/common/src /app/services/common/src
COPY services/mime-core/src /app/services/mime-core/src
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# ---- one short stage per service: its code, its container defaults, its entry point ----
FROM runtime AS service-smtp-edge
COPY services/smtp-edge/src /app/services/smtp-edge/src
# Unprivileged ports inside the container (no NET_BIND_SERVICE needed with every capability dropped);
# the Kubernetes Service, or `docker run -p 587:2587 -p 465:2465`, exposes them as 587 and 465.
ENV PYTHONPATH=/app/gen:/app/services/smtp-edge/src:/app/services/common/src:/app/services/mime-core/src \
    SMTP_HOST=0.0.0.0 \
    SMTP_STARTTLS_PORT=2587 \
    SMTP_TLS_PORT=2465 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    TLS_CERT_FILE=/etc/smtp-edge/tls/tls.crt \
    TLS_KEY_FILE=/etc/smtp-edge/tls/tls.key
EXPOSE 2587 2465 8080
ENTRYPOINT ["python", "-m", "smtp_edge"]

FROM runtime AS service-forwarder
COPY services/forwarder/src /app/services/forwarder/src
ENV PYTHONPATH=/app/gen:/app/services/forwarder/src:/app/services/common/src:/app/services/mime-core/src \
    GRPC_HOST=0.0.0.0 \
    GRPC_PORT=50051 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8081
EXPOSE 50051 8081
ENTRYPOINT ["python", "-m", "forwarder"]

FROM runtime AS service-cakemail-sandbox
COPY services/cakemail-sandbox/src /app/services/cakemail-sandbox/src
ENV PYTHONPATH=/app/gen:/app/services/cakemail-sandbox/src:/app/services/common/src \
    SANDBOX_HOST=0.0.0.0 \
    SANDBOX_PORT=8090
EXPOSE 8090
ENTRYPOINT ["python", "-m", "cakemail_sandbox"]

# ---- the image: the stage SERVICE names (an unknown SERVICE fails the build: no such stage or image) ----
FROM service-${SERVICE}
# Bytecode is compiled now: the root filesystem is read-only at run time.
RUN python -m compileall -q /app
USER 10001:10001
