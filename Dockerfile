# syntax=docker/dockerfile:1
#
# aiops-bot container image: `aiops-bot serve` as an unprivileged user on a slim Python base.
#
# Build:  docker build -t aiops-bot .
# Run:    docker run --rm -p 3000:3000 -e SLACK_BOT_TOKEN=... -e SLACK_SIGNING_SECRET=... aiops-bot
#
# Two stages: `build` turns the source into a wheel and installs it with the pinned runtime
# dependencies (requirements.lock, every distribution's sha256 required: the same lock `make`
# installs) into a virtualenv at /opt/venv; `runtime` copies only that
# virtualenv. No compiler, pip cache, source tree, test code or secret reaches the final image:
# secrets are read at start from the environment / Secret Manager (docs/deploy.md).
#
# The base is pinned by version in both stages (they must match: the virtualenv's interpreter
# path is copied across). Pin it by digest as well (python:3.11.14-slim-bookworm@sha256:...)
# and let Dependabot / Renovate raise both together.
FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Dependencies first, so that a code-only change reuses this layer.
COPY requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --requirement requirements.lock

# The project itself, as a wheel (README* matches nothing harmlessly when there is no README).
COPY pyproject.toml README* ./
COPY bot ./bot
COPY commands ./commands
RUN /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /tmp/dist . \
 && /opt/venv/bin/pip install --no-cache-dir --no-deps /tmp/dist/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/aiops-bot --help > /dev/null


FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="aiops-bot" \
      org.opencontainers.image.description="ChatOps Slack bot for Vertex AI model operations" \
      org.opencontainers.image.licenses="Proprietary"

ENV PATH=/opt/venv/bin:$PATH \
    AIOPS_DATA_DIR=/var/lib/aiops-bot \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONFAULTHANDLER=1

# A fixed, unprivileged uid/gid (no login shell, no home). /var/lib/aiops-bot (AIOPS_DATA_DIR)
# is the only writable place: where the SQLite fallback lands when DATABASE_URL is unset (local
# runs only; deployments use Cloud SQL).
RUN groupadd --system --gid 10001 aiops \
 && useradd --system --uid 10001 --gid aiops --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin aiops \
 && install --directory --owner=aiops --group=aiops --mode=0750 /var/lib/aiops-bot

COPY --from=build /opt/venv /opt/venv

# /etc/aiops-bot -> the bundled config directory, so that AIOPS_CONFIG can name a stable path
# (AIOPS_CONFIG=/etc/aiops-bot/example.toml) whatever the Python version inside the venv is.
RUN python -c "import importlib.util, pathlib; spec = importlib.util.find_spec('bot'); pathlib.Path('/etc/aiops-bot').symlink_to(pathlib.Path(spec.submodule_search_locations[0]) / 'config')" \
 && test -f /etc/aiops-bot/example.toml

WORKDIR /var/lib/aiops-bot
USER 10001:10001

# `aiops-bot serve` listens on $PORT (default 3000; App Engine flexible sets PORT=8080).
EXPOSE 3000

# No curl in slim images: probe /healthz with the interpreter that is already here.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz'; sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]

CMD ["aiops-bot", "serve"]
