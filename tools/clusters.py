#!/usr/bin/env python3
"""Local Apache Kafka clusters (KRaft, combined broker+controller nodes) for tests, the demo and benchmarks.

Usage: clusters.py start NAME...     bring clusters up; prints one JSON line per cluster
       clusters.py stop [NAME...]    stop clusters (all when no name) and delete their data
       clusters.py kill NAME NODE    SIGKILL one node (a crash); `start NAME` restarts it in place
       clusters.py status            one line per cluster
       clusters.py env               NAME_BOOTSTRAP=host:port,... for each running cluster

Clusters: "source" and "target" (one node each) and "triple" (three nodes, replication factor 3,
min.insync.replicas=2). State lives in .test-infra/clusters/NAME/ (cluster.json, and per node its
server.properties, data and kafka.log). `start` reuses a running cluster, restarts the killed nodes of
a partly running one on the same ports with their data, and creates a cluster found entirely down
anew (fresh ports, empty logs).

Every node of the single-node clusters has one listener of each kind a user meets, all on 127.0.0.1:
  PLAINTEXT       no security
  SSL             TLS (server certificate for localhost / 127.0.0.1 from the test CA), no client certificate
  MTLS            TLS with a required client certificate (.test-infra/tls/client.pem)
  SASL_PLAINTEXT  SASL mechanisms PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (unsecured JWT)
  SASL_SSL        the same mechanisms over TLS
  REAUTH          SASL_PLAINTEXT whose sessions expire after 10 s (KIP-368 re-authentication)
Users (PLAIN and both SCRAM mechanisms): admin/admin-secret (super user), alice/alice-secret.
OAUTHBEARER takes any unsigned JWT (Kafka's unsecured validator); its `sub` is the principal.
ACLs are enforced (StandardAuthorizer) only where one exists: no ACL on a resource allows everyone.
The triple cluster has PLAINTEXT listeners only; node N is in rack "rack-N", and a consumer that names
its rack (client.rack) fetches from the replica there (RackAwareReplicaSelector, KIP-392).

The JSON line for a cluster: {"name", "cluster_id", "bootstrap" (PLAINTEXT of every node),
"nodes": [{"id", "pid", "listeners": {NAME: "127.0.0.1:PORT"}, "log"}], "tls_dir"}.
"""
import base64
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
INFRA = os.path.join(ROOT, ".test-infra")
STATE = os.path.join(INFRA, "clusters")
LIBS = os.path.join(INFRA, "kafka", "libs")
TLS = os.path.join(INFRA, "tls")
LOG4J = os.path.join(ROOT, "scripts", "kafka", "log4j2.properties")

CLUSTERS = {"source": 1, "target": 1, "triple": 3}
SECURE_LISTENERS = {"SSL": "SSL", "MTLS": "SSL", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL",
                    "REAUTH": "SASL_PLAINTEXT"}
USERS = {"admin": "admin-secret", "alice": "alice-secret"}
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
HEAP = "-Xmx512m"
START_TIMEOUT_S = 90


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def listener_names(name):
    return ["PLAINTEXT"] + ([] if CLUSTERS[name] > 1 else list(SECURE_LISTENERS))


def cluster_dir(name):
    return os.path.join(STATE, name)


def load(name):
    try:
        with open(os.path.join(cluster_dir(name), "cluster.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def save(cluster):
    with open(os.path.join(cluster_dir(cluster["name"]), "cluster.json.tmp"), "w") as f:
        json.dump(cluster, f, indent=1)
    os.replace(os.path.join(cluster_dir(cluster["name"]), "cluster.json.tmp"),
               os.path.join(cluster_dir(cluster["name"]), "cluster.json"))


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie or a recycled pid is not our broker.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"kafka.Kafka" in f.read()
    except OSError:
        return False


def jaas(listener):
    """Per-listener, per-mechanism JAAS lines: the broker's credentials and the PLAIN user table."""
    prefix = f"listener.name.{listener.lower()}"
    plain_users = " ".join(f'user_{u}="{p}"' for u, p in USERS.items())
    return [
        f"{prefix}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="admin-secret" {plain_users};',
        f"{prefix}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="admin-secret";',
        f"{prefix}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="admin" password="admin-secret";',
        f"{prefix}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
        f'required unsecuredLoginStringClaim_sub="admin";',
    ]


def server_properties(cluster, node):
    count = len(cluster["nodes"])
    listeners = node["listeners"]
    voters = ",".join(f'{n["id"]}@127.0.0.1:{n["controller_port"]}' for n in cluster["nodes"])
    protocol_map = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"] + \
        [f"{l}:{p}" for l, p in SECURE_LISTENERS.items() if l in listeners]
    lines = [
        f"node.id={node['id']}",
        "process.roles=broker,controller",
        f"controller.quorum.voters={voters}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listeners=" + ",".join([f"{l}://{a}" for l, a in listeners.items()] +
                                [f"CONTROLLER://127.0.0.1:{node['controller_port']}"]),
        "advertised.listeners=" + ",".join(f"{l}://{a}" for l, a in listeners.items()),
        "listener.security.protocol.map=" + ",".join(protocol_map),
        f"log.dirs={node['dir']}/data",
        "num.partitions=1",
        f"default.replication.factor={count}",
        f"min.insync.replicas={min(count, 2)}",
        f"offsets.topic.replication.factor={count}",
        "offsets.topic.num.partitions=5",
        f"transaction.state.log.replication.factor={count}",
        f"transaction.state.log.min.isr={min(count, 2)}",
        "transaction.state.log.num.partitions=5",
        "share.coordinator.state.topic.replication.factor=%d" % count,
        "share.coordinator.state.topic.min.isr=%d" % min(count, 2),
        "group.initial.rebalance.delay.ms=0",
        "log.retention.check.interval.ms=1000",
        "log.segment.delete.delay.ms=0",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found=true",
        "super.users=User:ANONYMOUS;User:admin",
    ]
    if count > 1:
        # A rack per node, and fetches from a replica in the client's rack (KIP-392).
        lines += [f"broker.rack=rack-{node['id']}",
                  "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"]
    if "SSL" in listeners:
        lines += [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={TLS}/server-keystore.pem",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={TLS}/ca.pem",
            "ssl.client.auth=none",
            "listener.name.mtls.ssl.client.auth=required",
            "sasl.enabled.mechanisms=" + ",".join(MECHANISMS),
            "listener.name.reauth.connections.max.reauth.ms=10000",
        ]
        for listener in ("SASL_PLAINTEXT", "SASL_SSL", "REAUTH"):
            lines += jaas(listener)
    return "\n".join(lines) + "\n"


def java_command(main_class, *args):
    return ["java", HEAP, f"-Dlog4j2.configurationFile={LOG4J}", "-cp", os.path.join(LIBS, "*"), main_class, *args]


def create(name):
    """Lays out a new cluster: ports, properties, formatted storage (with the SCRAM users)."""
    shutil.rmtree(cluster_dir(name), ignore_errors=True)
    os.makedirs(cluster_dir(name))
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    cluster = {"name": name, "cluster_id": cluster_id, "tls_dir": TLS, "nodes": []}
    names = listener_names(name)
    for node_id in range(1, CLUSTERS[name] + 1):
        ports = free_ports(len(names) + 1)
        node_dir = os.path.join(cluster_dir(name), f"node-{node_id}")
        os.makedirs(node_dir)
        cluster["nodes"].append({"id": node_id, "dir": node_dir, "pid": None, "controller_port": ports[-1],
                                 "listeners": {l: f"127.0.0.1:{p}" for l, p in zip(names, ports)}})
    scram = []
    if CLUSTERS[name] == 1:
        for user, password in USERS.items():
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                scram += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
    for node in cluster["nodes"]:
        properties = os.path.join(node["dir"], "server.properties")
        with open(properties, "w") as f:
            f.write(server_properties(cluster, node))
        result = subprocess.run(java_command("kafka.tools.StorageTool", "format", "-c", properties,
                                             f"--cluster-id={cluster_id}", *scram),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"clusters: formatting {name} node {node['id']} failed:\n{result.stdout}{result.stderr}")
    save(cluster)
    return cluster


# The nodes this invocation started, by pid: until the child has exec'd, /proc shows our own
# command line, so their liveness is asked of the process object.
STARTED = {}


def start_node(node):
    log = open(os.path.join(node["dir"], "kafka.log"), "ab")
    process = subprocess.Popen(java_command("kafka.Kafka", os.path.join(node["dir"], "server.properties")),
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True)
    node["pid"] = process.pid
    STARTED[process.pid] = process


def wait_ready(cluster):
    """Ready when every node answers metadata on its PLAINTEXT listener and lists every broker."""
    from confluent_kafka.admin import AdminClient
    deadline = time.time() + START_TIMEOUT_S
    expected = {n["id"] for n in cluster["nodes"]}
    for node in cluster["nodes"]:
        host, port = node["listeners"]["PLAINTEXT"].split(":")
        admin = None
        while True:
            process = STARTED.get(node["pid"])
            if (process.poll() is not None) if process else not alive(node["pid"]):
                tail = open(os.path.join(node["dir"], "kafka.log"), errors="replace").read()[-4000:]
                raise SystemExit(f"clusters: {cluster['name']} node {node['id']} exited during start:\n{tail}")
            try:
                if admin is None:
                    socket.create_connection((host, int(port)), timeout=1).close()
                    admin = AdminClient({"bootstrap.servers": node["listeners"]["PLAINTEXT"], "log_level": 0})
                if set(admin.list_topics(timeout=2).brokers) == expected:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                raise SystemExit(f"clusters: {cluster['name']} node {node['id']} not ready within "
                                 f"{START_TIMEOUT_S} s; see {node['dir']}/kafka.log")
            time.sleep(0.3)


def public(cluster):
    nodes = [{"id": n["id"], "pid": n["pid"], "listeners": n["listeners"],
              "log": os.path.join(n["dir"], "kafka.log")} for n in cluster["nodes"]]
    bootstrap = ",".join(n["listeners"]["PLAINTEXT"] for n in cluster["nodes"])
    return {"name": cluster["name"], "cluster_id": cluster["cluster_id"], "bootstrap": bootstrap,
            "nodes": nodes, "tls_dir": cluster["tls_dir"]}


def start(name):
    if name not in CLUSTERS:
        raise SystemExit(f"clusters: unknown cluster {name!r}; known: {', '.join(CLUSTERS)}")
    cluster = load(name)
    if cluster is None or not any(alive(n["pid"]) for n in cluster["nodes"]):
        cluster = create(name)
    for node in cluster["nodes"]:
        if not alive(node["pid"]):
            start_node(node)
    save(cluster)
    wait_ready(cluster)
    return public(cluster)


def stop(name):
    cluster = load(name)
    if cluster is None:
        return
    for node in cluster["nodes"]:
        if alive(node["pid"]):
            os.killpg(node["pid"], signal.SIGKILL)
    for node in cluster["nodes"]:
        while alive(node["pid"]):
            time.sleep(0.05)
    shutil.rmtree(cluster_dir(name), ignore_errors=True)


def kill(name, node_id):
    cluster = load(name)
    node = next((n for n in (cluster or {}).get("nodes", []) if n["id"] == node_id), None)
    if node is None or not alive(node["pid"]):
        raise SystemExit(f"clusters: {name} node {node_id} is not running")
    os.killpg(node["pid"], signal.SIGKILL)
    while alive(node["pid"]):
        time.sleep(0.05)


def main(argv):
    os.makedirs(STATE, exist_ok=True)
    # One cluster manager at a time: two test binaries may ask for the same cluster at once.
    with open(os.path.join(STATE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        run(argv)


def run(argv):
    if len(argv) >= 2 and argv[0] == "start":
        for name in argv[1:]:
            print(json.dumps(start(name)), flush=True)
    elif argv and argv[0] == "stop":
        for name in argv[1:] or list(CLUSTERS):
            stop(name)
    elif len(argv) == 3 and argv[0] == "kill":
        kill(argv[1], int(argv[2]))
    elif argv == ["env"]:
        for name in CLUSTERS:
            cluster = load(name)
            if cluster and any(alive(n["pid"]) for n in cluster["nodes"]):
                print(f"{name.upper()}_BOOTSTRAP={public(cluster)['bootstrap']}")
    elif argv == ["status"]:
        for name in CLUSTERS:
            cluster = load(name)
            if cluster is None:
                print(f"{name}: stopped")
                continue
            states = [f"node {n['id']} {'up' if alive(n['pid']) else 'down'}" for n in cluster["nodes"]]
            print(f"{name}: {public(cluster)['bootstrap']} ({', '.join(states)})")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
