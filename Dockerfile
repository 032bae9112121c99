# audioembed: the gRPC embedding service in a container.
#
#   docker build -t audioembed .
#   docker run --network host -v audioembed-models:/models audioembed weights download   # once, or mount your own
#   docker run --network host -v audioembed-models:/models audioembed                    # serves on :50051
#
# The image holds no weights: they live in the /models volume. Every sub-command of the `audioembed` CLI runs
# as `docker run IMAGE <command> ...`; the default command is `serve`.

# Any Debian-like image with Python >= 3.10, `python3 -m venv` and useradd; the official slim image by default.
ARG BASE_IMAGE=python:3.11-slim

# ---- build stage: a virtual environment with the project and its dependencies, nothing else -------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/audioembed
WORKDIR /src

# Dependencies first, read from pyproject.toml, in their own layer: editing the code then rebuilds in seconds.
COPY pyproject.toml README.md ./
RUN /opt/audioembed/bin/python -c 'import importlib, sys; \
toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "pip._vendor.tomli"); \
print("\n".join(toml.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
 && /opt/audioembed/bin/pip install --requirement requirements.txt

COPY audioembed ./audioembed
COPY server ./server
# pip byte-compiles what it installs: the runtime user cannot write __pycache__, and compiled modules start
# faster. Not needed at run time: pip itself, and the test suites NumPy and SciPy ship (~50 MB, a fifth of
# the environment; nothing imports them outside `numpy.test()` / `scipy.test()`).
RUN /opt/audioembed/bin/pip install --no-deps . \
 && /opt/audioembed/bin/pip uninstall --yes pip setuptools \
 && find /opt/audioembed/lib -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} + \
 && /opt/audioembed/bin/audioembed --version

# ---- runtime stage ----------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="audioembed" \
      org.opencontainers.image.description="VGGish audio embeddings (same numbers as the TensorFlow reference) over gRPC" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric uid/gid, so orchestrators can check runAsNonRoot and volumes can be chowned ahead of time.
# --no-log-init: a high uid would otherwise grow a large sparse /var/log/lastlog.
RUN groupadd --gid 10001 audioembed \
 && useradd --uid 10001 --gid 10001 --no-log-init --home-dir /home/audioembed --create-home \
        --shell /usr/sbin/nologin audioembed \
 && mkdir /models \
 && chown 10001:10001 /models

COPY --from=build /opt/audioembed /opt/audioembed

# Every `audioembed serve` flag has an AUDIOEMBED_* variable; these are the ones the image fixes. The drain
# period is 8 s so that a plain `docker stop` (SIGKILL after 10 s) still ends in a clean exit.
ENV PATH=/opt/audioembed/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUDIOEMBED_HOME=/models \
    AUDIOEMBED_HOST=0.0.0.0 \
    AUDIOEMBED_PORT=50051 \
    AUDIOEMBED_GRACE_SECONDS=8

# Weights and the download cache. A fresh named volume inherits the ownership above, so `weights download`
# can write to it; a bind mount must be readable (and, to download into it, writable) by uid 10001.
VOLUME ["/models"]
EXPOSE 50051
USER 10001:10001
WORKDIR /home/audioembed

# `docker stop` sends SIGTERM: the server reports NOT_SERVING, refuses new calls, lets in-flight ones finish
# within AUDIOEMBED_GRACE_SECONDS and exits 0. Raising that variable? Raise `docker stop -t` (or
# `--stop-timeout`, Kubernetes' terminationGracePeriodSeconds) above it too.
STOPSIGNAL SIGTERM

# Healthy = ready: the embedding service is SERVING once the weights have loaded (the server-wide "" status
# only says the process is up). The probe reads AUDIOEMBED_PORT, so another port needs no change here.
# start-period covers loading the weights; probes that fail during it do not count.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/audioembed/bin/python", "-m", "audioembed_server.healthcheck", \
         "--service", "audioembed.v1.EmbeddingService"]

ENTRYPOINT ["audioembed"]
CMD ["serve"]
