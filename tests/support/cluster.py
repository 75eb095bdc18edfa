"""A throwaway 3-master Redis Cluster on loopback ports, from the redis-server binary, each
master with production's settings (deploy/redis.conf and deploy/redis-cluster.conf: an
append-only file fsynced every second) in a directory of its own."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import REDIS_CLUSTER_CONF, REDIS_CONF, redis_config, wait_for_port


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is a valid port too."""
    while True:
        port = random.randint(20_000, 50_000)
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
            return port


class LocalCluster:
    def __init__(self, masters: int = 3) -> None:
        self.ports = [cluster_port() for _ in range(masters)]
        self.dir = tempfile.mkdtemp(prefix="analytics-cluster-")
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}/0"

    def start(self, attempts: int = 3) -> LocalCluster:
        for attempt in range(attempts):
            try:
                return self._start()
            except (TimeoutError, subprocess.CalledProcessError):
                # A port taken between choosing it and binding it: try fresh ones.
                self.stop()
                self.dir = tempfile.mkdtemp(prefix="analytics-cluster-")
                self.ports = [cluster_port() for _ in self.ports]
                self.processes = []
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _start(self) -> LocalCluster:
        server = shutil.which("redis-server") or "redis-server"
        for port in self.ports:
            node = Path(self.dir, str(port))
            node.mkdir()
            config = node / "redis.conf"
            config.write_text(redis_config(
                REDIS_CONF, REDIS_CLUSTER_CONF, port=str(port), bind="127.0.0.1", dir=str(node),
                logfile=str(node / "redis.log"), cluster_config_file=f"nodes-{port}.conf",
                cluster_node_timeout="2000"))
            self.processes.append(subprocess.Popen(
                [server, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            wait_for_port(port)
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"],
                                     capture_output=True, text=True).stdout for p in self.ports]
            if all("cluster_state:ok" in s for s in states):
                return self
            time.sleep(0.2)
        raise TimeoutError("the local cluster did not become ready")

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":  # `make cluster`: run one until Ctrl-C
    cluster = LocalCluster().start()
    print(f"REDIS_URL={cluster.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
