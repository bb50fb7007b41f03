"""app/ingest"""
