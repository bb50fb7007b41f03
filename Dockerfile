# hookscope: self-hostable webhook inspector.
#   docker build -t hookscope .
#   docker run -p 8080:8080 -v hookscope-data:/data hookscope
# Bound to 0.0.0.0 inside the container, hookscope requires a token: set HOOKSCOPE_TOKEN, or read the generated one
# from the container's log. For forwarding to a dev server on the host, run with --network host or target
# host.docker.internal (with --forward-allow host.docker.internal).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOOKSCOPE_DB=/data/hookscope.db \
    HOOKSCOPE_HOST=0.0.0.0 \
    HOOKSCOPE_PORT=8080

RUN useradd --system --create-home --home-dir /home/hookscope --uid 10001 hookscope \
 && mkdir -p /data /opt/hookscope \
 && chown hookscope:hookscope /data

WORKDIR /opt/hookscope
COPY pyproject.toml README.md ./
COPY app ./app
COPY templates ./templates
COPY static ./static
RUN pip install .

USER hookscope
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HOOKSCOPE_PORT','8080'))"
CMD ["hookscope", "serve"]
