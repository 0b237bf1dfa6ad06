"""Waiting in a test for something another thread or process sets off."""

import time


def wait_until(condition, timeout: float = 10.0, interval: float = 0.1):
    """Call `condition` until it returns something true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
