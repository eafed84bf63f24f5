"""The promptcache directory: where it is, whether it can be used, and its private salt.

A directory the user *named* (the ``directory`` argument or ``$PROMPTCACHE_DIR``) that cannot
be used is a :class:`~promptcache.ConfigError` raised by ``PromptCache()``, naming the path and
the fix. The *default* directory (the platform's user cache directory) that cannot be used is
one :class:`~promptcache.StoreWarning` there, and the calls go on without a local cache.

Everything promptcache creates here is private: directories 0700, files 0600, whatever the
umask (directories the user made themselves keep their mode).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from promptcache._errors import ConfigError

__all__ = [
    "SALT_FILE",
    "load_salt",
    "locate_directory",
    "make_private_dir",
    "prepare_directory",
    "private_file",
]

SALT_FILE = "salt"
_SALT_LEN = 32
# SQLite's unix VFS refuses a database whose path, plus the "-journal" suffix it may add, is
# longer than 512 bytes (MAX_PATHNAME): measured with SQLite 3.40, a 504-byte path opens and a
# 505-byte one fails with "unable to open database file". The longest database promptcache
# opens in its directory is the response store's.
_SQLITE_MAX_DB_PATH = 504
_LONGEST_DB = "/responses/cache.db"
_FIX = "choose another directory (the `directory` argument or $PROMPTCACHE_DIR)"


def _euid() -> int | None:
    geteuid = getattr(os, "geteuid", None)  # absent on Windows
    return None if geteuid is None else int(geteuid())


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents, each 0700 whatever the umask.

    An existing directory is left as it is; an existing file raises ``NotADirectoryError``.
    """
    if path.is_dir():
        return path
    parent = path.parent
    if parent != path and not parent.is_dir():
        make_private_dir(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, "exists and is not a directory", str(path)
            ) from None
        return path  # another process made it meanwhile
    # mkdir's mode is filtered by the umask: a umask that takes owner bits would leave it
    # unusable, one that takes none would not matter; say exactly what we mean.
    os.chmod(path, 0o700)
    return path


def private_file(path: Path, *, create: bool = True) -> None:
    """Create ``path`` empty (0600) if missing; make an existing file of ours 0600.

    SQLite gives a database's ``-wal``/``-shm``/``-journal`` files the database file's mode,
    so creating the database file 0600 first keeps them all private whatever the umask. With
    ``create=False`` a missing file is left missing.
    """
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        if create:
            raise
        return
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) != 0o600 and st.st_uid == _euid():
            # A file created by an older promptcache (0644) or under a loose umask.
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def locate_directory(directory: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """Return the promptcache directory (absolute) and whether the user named it.

    The argument wins, then ``$PROMPTCACHE_DIR`` (both count as *named*; an empty variable
    counts as unset), then the platform's user cache directory (``~/.cache/promptcache`` on
    Linux). An empty string argument is refused rather than read as the current directory.
    Nothing is created.
    """
    if directory is None:
        env = os.environ.get("PROMPTCACHE_DIR")
        if env:
            return Path(env).expanduser().absolute(), True
        import platformdirs

        default = platformdirs.user_cache_dir("promptcache", appauthor=False)
        return Path(default).expanduser().absolute(), False
    if not isinstance(directory, str | os.PathLike):
        raise ConfigError(f"directory must be a path or None, not {type(directory).__name__}")
    raw = os.fspath(directory)
    if not raw:
        raise ConfigError(
            "directory='' names no directory (it would put the cache in the current one): pass "
            "a path (directory='.' if the current directory is meant) or None for the default"
        )
    # Absolute now: SQLite opens a connection per thread, and a later chdir must not move it.
    return Path(raw).expanduser().absolute(), True


def _explain(path: Path, exc: OSError) -> str:
    code = exc.errno
    if code == errno.ENAMETOOLONG:
        return f"the promptcache directory path {str(path)!r} is too long; choose a shorter one"
    if isinstance(exc, NotADirectoryError) or code in (errno.ENOTDIR, errno.EEXIST):
        return (
            f"the promptcache directory {str(path)!r} exists and is not a directory "
            f"(or lies under a file): {_FIX}"
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        what = "read-only file system" if code == errno.EROFS else "permission denied"
        return (
            f"promptcache cannot write to the directory {str(path)!r} ({what}): make it "
            f"writable by this user or {_FIX}"
        )
    if code == errno.ENOSPC:
        return f"no space left for the promptcache directory {str(path)!r}: free some or {_FIX}"
    return f"promptcache cannot use the directory {str(path)!r} ({exc.strerror or exc}): {_FIX}"


def prepare_directory(path: Path) -> bytes:
    """Make ``path`` ready for promptcache and return its salt.

    Creates it (0700, with missing parents) when needed, checks that this user can write
    there, that SQLite can open its databases there (path length), and that the salt is this
    user's. Raises :class:`~promptcache.ConfigError` saying what is wrong and how to fix it.
    """
    length = len(os.fsencode(path)) + len(_LONGEST_DB)
    if length > _SQLITE_MAX_DB_PATH:
        raise ConfigError(
            f"the promptcache directory path {str(path)!r} is too long for SQLite "
            f"({len(os.fsencode(path))} bytes; at most {_SQLITE_MAX_DB_PATH - len(_LONGEST_DB)}"
            "): choose a shorter one"
        )
    try:
        make_private_dir(path)
        _probe_writable(path)
        return load_salt(path)
    except OSError as exc:
        raise ConfigError(_explain(path, exc)) from exc


def _probe_writable(path: Path) -> None:
    # A real file, not os.access(): access() answers for the real uid and ignores ACLs and
    # read-only mounts in places; creating a file is what the store and the ledger will do.
    probe = path / f".probe.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.unlink(probe)


def _read_salt(path: Path) -> bytes | None:
    """Return the salt file's bytes (``None`` if missing); refuse another user's salt."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        euid = _euid()
        if euid is not None and st.st_uid != euid:
            # Whoever owns the salt can recompute every credential fingerprint in the keys
            # and plant entries: a directory is private to one user.
            raise ConfigError(
                f"the promptcache salt {str(path)!r} belongs to another user (uid {st.st_uid}, "
                f"not {euid}); a promptcache directory is private to one user: {_FIX}, or "
                "remove that file if the directory is yours"
            )
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        return f.read(_SALT_LEN + 1)


def load_salt(directory: Path) -> bytes:
    """Return the directory's random 32-byte salt, creating it (0600) on first use.

    Processes sharing the directory agree on it: the first writer publishes it with an atomic
    hard link, so nobody ever reads a half-written salt, and the losers read the winner's.
    A salt that belongs to another user is a :class:`~promptcache.ConfigError`.
    """
    path = Path(directory) / SALT_FILE
    for _ in range(3):
        salt = _read_salt(path)
        if salt is not None:
            if len(salt) == _SALT_LEN:
                return salt
            # A damaged salt only changes fingerprints (old entries become misses): replace it.
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        make_private_dir(path.parent)
        tmp = path.with_name(f".{SALT_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(_SALT_LEN))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    raise OSError(f"could not create a salt in {directory}")
