"""The controller: MariaDB, RabbitMQ, memcached, Keystone, Glance, Placement, then the
Nova and Neutron servers (in nova.py and neutron.py, which also serve the other roles) and the
dashboard (horizon.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stackwright.ceph import cluster, has_storage
from stackwright.context import HostContext
from stackwright.dashboard import has_dashboard
from stackwright.releases.modern import ceph, cinder, horizon, neutron, nova
from stackwright.releases.modern.api import admin_env, answers, listen_default
from stackwright.releases.modern.files import rendered
from stackwright.releases.modern.guards import SECRETS_DIR, applied_when_unchanged, as_user, marker
from stackwright.releases.modern.sockets import listening, rebind
from stackwright.sinks import env_file, single_line
from stackwright.steps import Command, Directory, File, Service, Step, Wait

if TYPE_CHECKING:
    from stackwright.releases.base import Release

MARIADB_CNF = "/etc/mysql/mariadb.conf.d/99-openstack.cnf"
DATABASES_SQL = f"{SECRETS_DIR}/openstack-databases.sql"
RABBITMQ_CONF = "/etc/rabbitmq/rabbitmq.conf"
RABBITMQ_ADVANCED = "/etc/rabbitmq/advanced.config"
EPMD_DROPIN = "/etc/systemd/system/epmd.socket.d/stackwright.conf"
RABBITMQ_PASSWORD = f"{SECRETS_DIR}/rabbitmq-openstack.password"
MEMCACHED_CONF = "/etc/memcached.conf"
KEYSTONE_CONF = "/etc/keystone/keystone.conf"
KEYSTONE_UWSGI = "/etc/keystone/keystone-uwsgi.ini"
KEYSTONE_BOOTSTRAP_ENV = f"{SECRETS_DIR}/keystone-bootstrap.env"
KEYSTONE_OWNER = ("--keystone-user", "keystone", "--keystone-group", "keystone")
CATALOG_SCRIPT = "/usr/local/lib/stackwright/keystone-catalog.py"
CATALOG_JSON = f"{SECRETS_DIR}/keystone-catalog.json"
GLANCE_API_CONF = "/etc/glance/glance-api.conf"
PLACEMENT_CONF = "/etc/placement/placement.conf"
PLACEMENT_UWSGI = "/etc/placement/placement-api-uwsgi.ini"
KEYSTONE_LISTEN = "/etc/default/keystone"
PLACEMENT_LISTEN = "/etc/default/placement-api"

# (database, account, password name)
DATABASES: tuple[tuple[str, str, str], ...] = (
    ("keystone", "keystone", "keystone_db_password"),
    ("glance", "glance", "glance_db_password"),
    ("placement", "placement", "placement_db_password"),
    ("nova_api", "nova", "nova_db_password"),
    ("nova", "nova", "nova_db_password"),
    ("nova_cell0", "nova", "nova_db_password"),
    ("neutron", "neutron", "neutron_db_password"),
)
# With storage nodes.
CINDER_DATABASES: tuple[tuple[str, str, str], ...] = (("cinder", "cinder", "cinder_db_password"),)
# (service user, password name): each gets the admin role on the service project.
SERVICE_USERS: tuple[tuple[str, str], ...] = (
    ("glance", "glance_password"),
    ("placement", "placement_password"),
    ("nova", "nova_password"),
    ("neutron", "neutron_password"),
)
CINDER_USERS: tuple[tuple[str, str], ...] = (("cinder", "cinder_password"),)


def packages(host: HostContext) -> tuple[str, ...]:
    return (
        "mariadb-server",
        "python3-pymysql",
        "rabbitmq-server",
        "memcached",
        "python3-memcache",
        "keystone",
        "python3-openstacksdk",
        "python3-openstackclient",
        "glance-api",
        "placement-api",
        *nova.controller_packages(),
        *neutron.server_packages(),
        *(horizon.packages() if has_dashboard(host.inventory) else ()),
        *(cinder.packages() if has_storage(host.inventory) else ()),
    )


def steps(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        *mariadb(host, release, pw),
        *rabbitmq(host, release, pw),
        *memcached(host, release, pw),
        *keystone(host, release, pw),
        *glance(host, release, pw),
        *placement(host, release, pw),
        *nova.controller(host, release, pw),
        *neutron.server(host, release, pw),
        *neutron.external_network(host, release, pw),
        *(horizon.steps(host, release, pw) if release.traits.dashboard else []),
        # last: cinder-volume waits for the storage nodes' pools, and nothing else waits for it
        *(cinder.steps(host, release, pw) if has_storage(host.inventory) else []),
    ]


def databases_of(host: HostContext) -> tuple[tuple[str, str, str], ...]:
    return DATABASES + (CINDER_DATABASES if has_storage(host.inventory) else ())


def service_users_of(host: HostContext) -> tuple[tuple[str, str], ...]:
    return SERVICE_USERS + (CINDER_USERS if has_storage(host.inventory) else ())


def mariadb(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    accounts = {user: pw[secret] for _, user, secret in databases_of(host)}
    databases = [(db, user, pw[secret]) for db, user, secret in databases_of(host)]
    return [
        rendered(release, host, pw, MARIADB_CNF),
        Service("mariadb", restart_when=(MARIADB_CNF,)),
        Wait("MariaDB answers on its socket", "mysqladmin --silent ping", timeout_s=60),
        rendered(
            release,
            host,
            pw,
            DATABASES_SQL,
            root_only=True,
            format="text",
            databases=databases,
            accounts=list(accounts.items()),
        ),
        # root logs in through the unix socket (Debian's default); the SQL holds the
        # passwords, so it is read from a root-only file, never from argv.
        applied_when_unchanged(
            "create the service databases and accounts",
            "mariadb-openstack",
            (DATABASES_SQL,),
            f"mysql --batch < {DATABASES_SQL}",
        ),
    ]


def rabbitmq(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    password = RABBITMQ_PASSWORD
    return [
        rendered(release, host, pw, RABBITMQ_CONF, format="text"),
        rendered(release, host, pw, RABBITMQ_ADVANCED, template="rabbitmq-advanced.config.j2", format="text"),
        rendered(release, host, pw, EPMD_DROPIN, template="epmd.socket.conf.j2", format="text"),
        # RabbitMQ restarts right after (below: the drop-in changed) and registers with the new epmd.
        rebind(
            "epmd on loopback and the management address only",
            "epmd.service",
            ("epmd.socket",),
            listening(4369, ("127.0.0.1", host.management_ip)),
        ),
        Service("rabbitmq-server", restart_when=(RABBITMQ_CONF, RABBITMQ_ADVANCED, EPMD_DROPIN)),
        # The AMQP listener opens once the broker has booted; asking rabbitmqctl costs an Erlang
        # VM start (about 1 s) on every apply.
        Wait("RabbitMQ accepts AMQP connections", "ss -Hltn 'sport = :5672' | grep -q .", timeout_s=120),
        File(password, single_line(pw["rabbitmq_password"], "rabbitmq_password"), mode=0o600, secret=True),
        # rabbitmqctl reads a password it is not given from stdin. RabbitMQ makes its guest user
        # with its first database only, so it goes here too: a separate check would cost an Erlang
        # VM start (about 1 s) on every apply.
        applied_when_unchanged(
            "RabbitMQ user 'openstack' with its password and permissions, no guest user",
            "rabbitmq-openstack",
            (password,),
            "users=$(rabbitmqctl --quiet list_users | cut -f1)\n"
            'if echo "$users" | grep -qx openstack; then\n'
            f"  rabbitmqctl change_password openstack < {password}\n"
            "else\n"
            f"  rabbitmqctl add_user openstack < {password}\n"
            "fi\n"
            "rabbitmqctl set_permissions -p / openstack '.*' '.*' '.*'\n"
            'if echo "$users" | grep -qx guest; then rabbitmqctl delete_user guest; fi',
        ),
    ]


def memcached(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        rendered(release, host, pw, MEMCACHED_CONF, format="text"),
        Service("memcached", restart_when=(MEMCACHED_CONF,)),
    ]


def keystone_endpoints(host: HostContext, port: int, path: str = "") -> dict[str, str]:
    """Public on the controller's public address, internal and admin on management."""
    internal = f"{host.internal_url_base}:{port}{path}"
    return {
        "public": f"{host.public_url_base}:{port}{path}",
        "internal": internal,
        "admin": internal,
    }


def keystone(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    identity = keystone_endpoints(host, 5000, "/v3/")
    bootstrap_env = env_file(
        (
            ("OS_BOOTSTRAP_PASSWORD", pw["admin_password"]),
            ("OS_BOOTSTRAP_USERNAME", "admin"),
            ("OS_BOOTSTRAP_PROJECT_NAME", "admin"),
            ("OS_BOOTSTRAP_ROLE_NAME", "admin"),
            ("OS_BOOTSTRAP_SERVICE_NAME", "keystone"),
            ("OS_BOOTSTRAP_REGION_ID", host.region),
            ("OS_BOOTSTRAP_PUBLIC_URL", identity["public"]),
            ("OS_BOOTSTRAP_INTERNAL_URL", identity["internal"]),
            ("OS_BOOTSTRAP_ADMIN_URL", identity["admin"]),
        )
    )
    return [
        rendered(release, host, pw, KEYSTONE_CONF, group="keystone"),
        rendered(release, host, pw, KEYSTONE_UWSGI),
        listen_default(release, host, "keystone", 5000, KEYSTONE_UWSGI, host.api_listen_ip),
        Command(
            "Keystone database schema",
            as_user("keystone", "keystone-manage db_sync"),
            once_marker=marker(release, "keystone-db-sync"),
        ),
        Command(
            "Keystone fernet token keys",
            ("keystone-manage", "fernet_setup", *KEYSTONE_OWNER),
            unless="test -s /etc/keystone/fernet-keys/0",
        ),
        Command(
            "Keystone credential encryption keys",
            ("keystone-manage", "credential_setup", *KEYSTONE_OWNER),
            unless="test -s /etc/keystone/credential-keys/0",
        ),
        File(KEYSTONE_BOOTSTRAP_ENV, bootstrap_env, mode=0o600, secret=True),
        # bootstrap reads OS_BOOTSTRAP_* from its environment; it creates the admin
        # user, project and role and the identity endpoints, and resets what differs.
        applied_when_unchanged(
            "Keystone bootstrap: admin user, identity service and endpoints",
            "keystone-bootstrap",
            (KEYSTONE_BOOTSTRAP_ENV,),
            f"set -a; . {KEYSTONE_BOOTSTRAP_ENV}; set +a\nkeystone-manage bootstrap",
        ),
        Service("keystone", restart_when=(KEYSTONE_CONF, KEYSTONE_UWSGI, KEYSTONE_LISTEN)),
        Wait("Keystone answers", answers(identity["internal"]), timeout_s=120),
        *catalog(host, release, pw),
    ]


def catalog_json(host: HostContext, pw: Mapping[str, str]) -> str:
    services = [
        ("glance", "image", "OpenStack Image", keystone_endpoints(host, 9292)),
        ("placement", "placement", "Placement API", keystone_endpoints(host, 8778)),
        ("nova", "compute", "OpenStack Compute", keystone_endpoints(host, 8774, "/v2.1")),
        ("neutron", "network", "OpenStack Networking", keystone_endpoints(host, 9696)),
    ]
    if has_storage(host.inventory):
        # %(project_id)s: Cinder's v3 API still takes the project in the path (its install guide).
        volume = keystone_endpoints(host, cinder.CINDER_PORT, "/v3/%(project_id)s")
        services.append(("cinderv3", "volumev3", "OpenStack Block Storage", volume))
    document = {
        "region": host.region,
        "auth_url": f"{host.internal_url_base}:5000/v3",
        "users": [{"name": name, "password": pw[secret]} for name, secret in service_users_of(host)],
        "services": [
            {"name": name, "type": kind, "description": text, "endpoints": endpoints}
            for name, kind, text, endpoints in services
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def catalog(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    """The service project, service users and the catalog, through openstacksdk."""
    return [
        Directory("/usr/local/lib/stackwright"),
        rendered(
            release, host, pw, CATALOG_SCRIPT, template="keystone-catalog.py.j2", mode=0o700, format="text"
        ),
        File(CATALOG_JSON, catalog_json(host, pw), mode=0o600, secret=True),
        applied_when_unchanged(
            "Keystone service project, service users and endpoints",
            "keystone-catalog",
            (CATALOG_SCRIPT, CATALOG_JSON),
            f"python3 {CATALOG_SCRIPT} {CATALOG_JSON}",
            env=admin_env(host, pw),
        ),
    ]


def glance(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        *ceph.client(host, release, pw),
        *cinder.glance_keyring(host, pw),
        rendered(release, host, pw, GLANCE_API_CONF, group="glance", ceph=cluster(host.inventory, pw)),
        Directory("/var/lib/glance/images", mode=0o750, owner="glance", group="glance"),
        Command(
            "Glance database schema",
            as_user("glance", "glance-manage db_sync"),
            once_marker=marker(release, "glance-db-sync"),
        ),
        # The metadata definitions (image and flavor properties the dashboard offers, Glance's
        # metadefs API) from the package's /etc/glance/metadefs: Glance's schema alone holds none.
        # A namespace already in the database is skipped, never duplicated.
        Command(
            "Glance metadata definitions",
            as_user("glance", "glance-manage db_load_metadefs"),
            once_marker=marker(release, "glance-metadefs"),
        ),
        Service("glance-api", restart_when=(GLANCE_API_CONF, *glance_restart_files(host))),
    ]


def glance_restart_files(host: HostContext) -> tuple[str, ...]:
    return (ceph.CEPH_CONF,) if has_storage(host.inventory) else ()


def placement(host: HostContext, release: Release, pw: Mapping[str, str]) -> list[Step]:
    return [
        rendered(release, host, pw, PLACEMENT_CONF, group="placement"),
        rendered(release, host, pw, PLACEMENT_UWSGI),
        listen_default(release, host, "placement-api", 8778, PLACEMENT_UWSGI, host.api_listen_ip),
        Command(
            "Placement database schema",
            as_user("placement", "placement-manage db sync"),
            once_marker=marker(release, "placement-db-sync"),
        ),
        Service("placement-api", restart_when=(PLACEMENT_CONF, PLACEMENT_UWSGI, PLACEMENT_LISTEN)),
        # nova-conductor and nova-scheduler loop on "placement ... does not have any
        # supported versions" until it answers (DESIGN §5b).
        Wait("Placement answers", answers(f"{host.internal_url_base}:8778/"), timeout_s=120),
    ]
