"""app/client"""
