# One image for the Neptune runtime (driver, executor) and the operator: entrypoint neptunectl.
#   docker build -t neptune-k8s .                                   (python:3.12-slim base)
#   buildah bud --build-arg BASE_IMAGE=localhost/neptune-base:bookworm-python -t ... .
# The base must provide python3 with the venv module (python:3.*-slim, or Debian's python3 +
# python3-venv as e2e/image.sh makes it). Both stages use the same base, so the venv's
# interpreter path is valid in the final stage.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
# Optional: a CA bundle path for pip inside the build (a TLS-inspecting proxy); e2e/image.sh
# mounts the host's bundle there with buildah -v. Empty = pip's own bundle.
ARG PIP_CERT=""
ARG PIP_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# A C compiler and the interpreter's headers, for the runtime's C modules (_yieldcore.c,
# _bellwatch.c), in this stage only. python:*-slim has the headers; Debian's python3 needs python3-dev.
RUN headers=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
    dev=""; [ -f "$headers/Python.h" ] || dev=python3-dev; \
    if ! command -v cc >/dev/null || [ -n "$dev" ]; then \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends gcc libc6-dev $dev >/dev/null && rm -rf /var/lib/apt/lists/*; \
    fi
RUN python3 -m venv /opt/neptune
WORKDIR /src
# Not bench/: the benchmarks (neptune_bench) stay out of the image; setuptools finds no package there.
COPY pyproject.toml ./
COPY executor_image/ executor_image/
COPY operator/ operator/
RUN [ -n "$PIP_CERT" ] || unset PIP_CERT; [ -n "$PIP_INDEX_URL" ] || unset PIP_INDEX_URL; \
    /opt/neptune/bin/pip install ".[operator]" \
 && /opt/neptune/bin/neptunectl --help >/dev/null
# No build tools in the final image: drop pip/setuptools from the venv.
RUN /opt/neptune/bin/python -m pip uninstall -y pip setuptools wheel >/dev/null 2>&1; \
    rm -rf /opt/neptune/bin/pip*; true

FROM ${BASE_IMAGE}
COPY --from=build /opt/neptune /opt/neptune
# A numeric non-root user (the restricted Pod Security Standard wants runAsNonRoot, and a numeric
# USER lets the kubelet verify it); a passwd entry so that getpass/home lookups work.
RUN echo 'neptune:x:10001:10001:neptune:/home/neptune:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'neptune:x:10001:' >> /etc/group \
 && mkdir -p /home/neptune && chown 10001:10001 /home/neptune
ENV PATH=/opt/neptune/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/home/neptune
USER 10001:10001
WORKDIR /home/neptune
ENTRYPOINT ["neptunectl"]
CMD ["--help"]
