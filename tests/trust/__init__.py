"""Issue 9: the trust guarantees (keys, identity, storage, crash and fork safety), tested from outside."""
