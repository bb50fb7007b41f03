"""Events: the typed record of every committed change (types.py) and the in-process bus that hands them to whatever
reacts (bus.py). See docs/events.md."""
