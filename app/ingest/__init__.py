"""Ingest: the capture URL `/h/{id}` (any method, raw bytes, committed before the sender is answered), the smee.io-
compatible event stream on the same URL, and passthrough (answering with the dev server's reply)."""
