"""The HTTP server layer under the app: uvicorn protocols with request-head limits and slow-client timeouts, and token
redaction in logs."""
