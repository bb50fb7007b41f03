"""app/events"""
