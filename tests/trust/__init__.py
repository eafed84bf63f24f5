"""Issue 9: the trust guarantees, tested from outside."""
