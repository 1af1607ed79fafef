"""verify --tempest: OpenStack's own validation suite against the deployed cloud.

Tempest runs from the operator's machine, pinned in a virtualenv stackwright manages (`venv.py`;
never the system Python): Debian's own `tempest` package targets the cloud's hosts' Python
(Debian 13's 3.13), not the machine an operator deploys from, and installing test code on the
cloud's controller is not something an operator wants. The pins (`constraints-<release>.txt`) are
the library versions the release's Debian ships, and Tempest itself is its newest release
(branchless: it tests every maintained release and follows their security fixes). `conf.py`
renders tempest.conf from the inventory (every endpoint, service and flavor is known; the only
thing read from the cloud is the list of its API extensions), `resources.py` makes and removes
what Tempest needs in the cloud (the test guest's images, two flavors), `run.py` runs it and
`results.py` reads its subunit stream.
"""
