"""The web side: JSON API by resource, the live websocket, HTML pages, login, auth, cross-site and Host rules, security
headers, JSON errors, the OpenAPI document."""
