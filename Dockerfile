# syntax=docker/dockerfile:1
# Recorder image: `recorderd` (and `recorder-worker`, same image) on python:3.11-slim.
# Not built by CI (no Docker engine there): check changes by reading, see README "Docker".
#
#   docker build -t recorder .
#   docker run -p 8080:8080 -e RECORDER_JWT_SECRET="$(openssl rand -hex 32)" \
#     -v recordings:/var/lib/recorder/recordings recorder
#
# RECORDER_HOST is 0.0.0.0 in the image, and recorderd refuses a non-loopback address without
# auth: set RECORDER_JWT_SECRET (or RECORDER_JWT_PUBLIC_KEY with RECORDER_URL_SIGNING_SECRET).

# ---- build: a wheel of this project, installed with its dependencies into a venv --------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/run.txt ./requirements/run.txt
COPY recorder ./recorder
COPY workers ./workers
# aiortc, av (with libvpx, libx264, libopus) and the rest come as manylinux wheels: no compiler.
# Dependencies at the locked versions and hashes (scripts/lock), then this project alone.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/recorder \
 && /opt/recorder/bin/pip install --require-hashes -r requirements/run.txt \
 && /opt/recorder/bin/pip install --no-deps /wheels/*.whl \
 && /opt/recorder/bin/python -c "import recorder.main, workers.main, av, aiortc"

# ---- runtime: the venv only, as an unprivileged user ----------------------------------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 recorder \
 && useradd --system --uid 10001 --gid recorder --home-dir /var/lib/recorder \
      --shell /usr/sbin/nologin recorder \
 && install -d -o recorder -g recorder -m 0750 /var/lib/recorder /var/lib/recorder/recordings
COPY --from=build /opt/recorder /opt/recorder
ENV PATH=/opt/recorder/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RECORDER_HOST=0.0.0.0 \
    RECORDER_PORT=8080 \
    RECORDER_STORAGE_DIR=/var/lib/recorder/recordings
USER recorder:recorder
WORKDIR /var/lib/recorder
# Recordings live here: keep them on a
# volume so files survive the container, and share it with recorder-worker.
VOLUME ["/var/lib/recorder/recordings"]
EXPOSE 8080
# SIGTERM drains (active recordings finalise within RECORDER_DRAIN_SECONDS, 60 by default):
# give `docker stop` a longer timeout, e.g. `docker stop -t 90`.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RECORDER_PORT', '8080'), timeout=4)"
ENTRYPOINT ["recorderd"]
