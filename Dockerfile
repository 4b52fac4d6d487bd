# notifyd's image: built in one stage, run in a slim one as an unprivileged user.
#   docker build -t notifyd .
#   docker run -p 8089:8089 -v notifyd-data:/var/lib/notifyd \
#       -e NOTIFYD_ALLOWED_API_URLS=http://bimserver:8080 notifyd
# compose.yaml runs it behind nginx.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY notifyd ./notifyd
COPY config ./config
COPY profiles ./profiles
RUN python -m venv /opt/notifyd/venv \
    && /opt/notifyd/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/notifyd/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim-bookworm AS runtime
# A system user without a shell or a home of its own; the data folder is its only one.
RUN groupadd --system --gid 10001 notifyd \
    && useradd --system --uid 10001 --gid notifyd --home-dir /var/lib/notifyd \
        --shell /usr/sbin/nologin notifyd \
    && install -d -o notifyd -g notifyd -m 0700 /var/lib/notifyd
COPY --from=build /opt/notifyd/venv /opt/notifyd/venv
COPY config/docker.toml /etc/notifyd/notifyd.toml
ENV PATH=/opt/notifyd/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER notifyd:notifyd
WORKDIR /var/lib/notifyd
# The job database (and uploaded models): keep it on a volume, or every restart loses the
# queue that BIMserver will never send again.
VOLUME ["/var/lib/notifyd"]
EXPOSE 8089
# SIGTERM drains: running jobs get drain_seconds, then go back to the queue. Give the
# container longer than that to stop (compose.yaml: stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8089/readyz', timeout=4).status == 200 else 1)"]
CMD ["notifyd", "serve", "--config", "/etc/notifyd/notifyd.toml"]
