"""gunicorn settings for pdm-records (docs/security/deployment.md).

Start from the checkout, behind the TLS reverse proxy (deploy/nginx/pdm-records.conf):

    PDM_ENV=production PDM_PROXY_COUNT=1 PDM_PREFERRED_URL_SCHEME=https \\
        .venv/bin/gunicorn -c gunicorn.conf.py

``gunicorn 'app:app'`` from the checkout reads this file too. Command-line options override it
(``--bind``, ``--workers``); gunicorn's own environment variables work as documented
(``WEB_CONCURRENCY`` for the worker count, ``FORWARDED_ALLOW_IPS``, ``GUNICORN_CMD_ARGS``).
In production the app refuses to start on a configuration problem, so a broken configuration
stops the workers from booting instead of serving.
"""

import os

wsgi_app = "app:app"

# Loopback only: the reverse proxy is the one listener the network sees (ports and flows:
# docs/security/architecture.md). Change with --bind when the proxy runs on another host.
bind = ["127.0.0.1:8000"]

# Threaded workers: a request waiting on S3 or hashing a large upload does not block the others.
# Each worker process holds numpy/scipy/trimesh (~200 MB); size WEB_CONCURRENCY to memory.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = 4

# Sized for uploads of 100 MB and more: nginx buffers the whole body before it passes it on,
# then the app hashes it, checks it and writes it to S3 with Object Lock (multipart, re-read of
# the retention). 300 s leaves room for a 512 MiB upload (PDM_MAX_UPLOAD_MB) to a slow store;
# keep nginx's proxy_read_timeout/proxy_send_timeout equal.
timeout = 300
graceful_timeout = 60
keepalive = 5

# Recycle workers now and then: mesh verification allocates large numpy arrays.
max_requests = 1000
max_requests_jitter = 100

# Trust X-Forwarded-* only from the local reverse proxy; the app applies them through
# Werkzeug's ProxyFix when PDM_PROXY_COUNT > 0 (rate limits per client address, HSTS).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Request limits: headers stay small; the body limit is the app's (PDM_MAX_UPLOAD_MB).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Logs to stdout/stderr for systemd/journald. Access lines hold no query strings beyond the
# path (API tokens travel in the Authorization header, never in URLs).
accesslog = "-"
errorlog = "-"
loglevel = "info"
proc_name = "pdm-records"

# Heartbeat files on tmpfs where there is one (avoids stalls on slow disks).
if os.path.isdir("/dev/shm"):  # noqa: S108  # nosec B108  # heartbeat files only, no data
    worker_tmp_dir = "/dev/shm"  # noqa: S108  # nosec B108  # heartbeat files only, no data

# No runtime control socket (gunicorn >= 24): stop and reload through systemd signals instead,
# so nothing else on the host can steer the server.
control_socket_disable = True
