"""The cache doctor: installation checks, and why the provider cache missed.

``_install`` checks the installation and the cache directory (``promptcache doctor`` has always
done this); the miss explanations live beside it. The command that shows both is
:mod:`promptcache._cli._doctor`.
"""

from __future__ import annotations

from promptcache._doctor._doctor import Doctor, make_pricer
from promptcache._doctor._findings import KINDS, DoctorOptions, Evidence, Finding, Kind
from promptcache._doctor._install import Check, diagnose

__all__ = [
    "KINDS",
    "Check",
    "Doctor",
    "DoctorOptions",
    "Evidence",
    "Finding",
    "Kind",
    "diagnose",
    "make_pricer",
]
