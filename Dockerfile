# kubeq: one image for the operator (`kubeq operator`) and for workers (`kubeq worker ...`).
# Build your worker image FROM this one and add your tasks module (see docs/worker-image.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY hack/install-venv.sh hack/install-venv.sh
COPY hack/uv/ hack/uv/
COPY pyproject.toml uv.lock README.md ./
COPY src/ src/
# the same install step as `make venv` (the versions in uv.lock), without the editable flag
# and the test extras; uv's download cache stays out of the layer, and the bytecode is
# compiled here, as the root filesystem is read-only at run time
RUN UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1 \
    sh hack/install-venv.sh /opt/kubeq --no-editable operator dashboard

FROM ${PYTHON_IMAGE}
# set by the release build: --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD)
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kubeq" \
      org.opencontainers.image.description="Redis task queue whose workers run on Kubernetes and scale themselves" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/kubeq/kubeq" \
      org.opencontainers.image.url="https://kubeq.dev" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin kubeq
COPY --from=build /opt/kubeq /opt/kubeq
ENV PATH=/opt/kubeq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["kubeq"]
CMD ["--help"]
