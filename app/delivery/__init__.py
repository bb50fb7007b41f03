"""Delivery: getting captures to targets. The wire client and SSRF guard, building the outgoing request, the sender of
one attempt, retries, re-signing, the per-target forward workers, replay, and the relay server behind `hookscope
forward`."""
