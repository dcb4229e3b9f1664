"""A real, local Kubernetes control plane for tests: etcd + kube-apiserver + kube-controller-manager.

No kubelet, no scheduler, no containers: objects are stored, validated (OpenAPI/CRD schemas,
admission), authorized (Node,RBAC) and garbage collected exactly as in a cluster, but no pod
ever runs. Binaries come from tests/testbed/build.sh (see paths.py).

Stdlib + the `kubernetes` client only; certificates are made with the `openssl` CLI.

    cp = ControlPlane()
    cp.start()
    try:
        api = cp.api_client()
        ...
    finally:
        cp.stop()
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .paths import BUILD_SCRIPT, Binaries, binaries

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Only what the tests need: ownerReference GC, namespace deletion, ServiceAccounts and their
# tokens, the kube-root-ca.crt ConfigMap, and aggregation of the built-in admin/edit/view roles.
CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
)


class ControlPlaneError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class _Proc:
    """One component: a process in its own session/process group, output to a log file."""

    def __init__(self, name: str, argv: list[str], log: Path):
        self.name, self.argv, self.log = name, argv, log
        self.popen: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            fh.write(f"\n===== starting {self.name}: {' '.join(self.argv)}\n".encode())
            fh.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def stop(self, timeout: float = 15.0) -> None:
        p, self.popen = self.popen, None
        if p is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            if p.poll() is not None:
                break
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                p.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        # Reap anything left in the group (the components do not fork, but be thorough).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if p.poll() is None:
            p.wait(5)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def rss_bytes(self) -> int | None:
        if not self.alive():
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None


class ControlPlane:
    def __init__(
        self,
        bins: Binaries | None = None,
        workdir: Path | None = None,
        start_timeout: float = 90.0,
        keep_workdir: bool = False,
    ):
        self.bins = bins or binaries()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.start_timeout = start_timeout
        self.keep_workdir = keep_workdir
        self._procs: dict[str, _Proc] = {}
        self.apiserver_port: int | None = None
        self.etcd_client_port: int | None = None

    # ------------------------------------------------------------------ public API
    @property
    def server(self) -> str:
        if self.apiserver_port is None:
            raise ControlPlaneError("control plane not started")
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self._dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self._dir / "pki" / "ca.crt"

    @property
    def logs(self) -> dict[str, Path]:
        return {name: p.log for name, p in self._procs.items()}

    def check_binaries(self) -> None:
        missing = self.bins.missing()
        if missing:
            raise ControlPlaneError(
                "testbed binaries missing: "
                + ", ".join(map(str, missing))
                + f"\nrun {BUILD_SCRIPT} (about 10 minutes cold, cached afterwards)"
            )

    def start(self) -> ControlPlane:
        self.check_binaries()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="vitpipeline-kube-"))
        self._dir.mkdir(parents=True, exist_ok=True)
        try:
            self._make_pki()
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self._procs.get(name)
            if proc:
                proc.stop()
        if self.workdir is not None and self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port against the same etcd."""
        proc = self._procs["kube-apiserver"]
        proc.stop()
        self._wait_port_free(self.apiserver_port)
        proc.start()
        self._wait_apiserver_ready()

    def api_client(self, kubeconfig: Path | None = None):
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def rss_bytes(self) -> dict[str, int | None]:
        return {name: p.rss_bytes() for name, p in self._procs.items()}

    def apply_kuberay_crds(self, wait: bool = True, timeout: float = 60.0) -> list[str]:
        """Create (or replace) every KubeRay CRD; by default wait until all are Established."""
        import yaml
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        files = sorted(self.bins.kuberay_crds.glob("*.yaml"))
        if not files:
            raise ControlPlaneError(f"no CRDs in {self.bins.kuberay_crds}; run {BUILD_SCRIPT}")
        names = []
        with self.api_client() as api:
            ext = client.ApiextensionsV1Api(api)
            for f in files:
                for doc in yaml.safe_load_all(f.read_text()):
                    if not doc or doc.get("kind") != "CustomResourceDefinition":
                        continue
                    name = doc["metadata"]["name"]
                    try:
                        ext.create_custom_resource_definition(doc, _preload_content=False)
                    except ApiException as e:
                        if e.status != 409:
                            raise
                        cur = json.loads(ext.read_custom_resource_definition(name, _preload_content=False).data)
                        doc["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
                        ext.replace_custom_resource_definition(name, doc, _preload_content=False)
                    names.append(name)
        if wait:
            self.wait_crds_established(names, timeout)
        return names

    def wait_crds_established(self, names: list[str], timeout: float = 60.0) -> None:
        from kubernetes import client

        deadline = time.monotonic() + timeout
        pending = set(names)
        with self.api_client() as api:
            ext = client.ApiextensionsV1Api(api)
            while pending:
                for name in sorted(pending):
                    crd = json.loads(ext.read_custom_resource_definition(name, _preload_content=False).data)
                    conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
                    if conds.get("Established") == "True" and conds.get("NamesAccepted", "True") == "True":
                        pending.discard(name)
                if pending:
                    if time.monotonic() > deadline:
                        raise ControlPlaneError(f"CRDs not established after {timeout}s: {sorted(pending)}")
                    time.sleep(0.2)

    def service_account_kubeconfig(
        self, namespace: str, name: str, expiration_seconds: int = 3600, create: bool = True
    ) -> Path:
        """Kubeconfig authenticating as ServiceAccount namespace/name via a TokenRequest token.

        The ServiceAccount is created if missing (create=True). It gets no RBAC here: whatever
        it may do must come from Roles/Bindings the test (or the chart) creates.
        """
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            if create:
                try:
                    core.create_namespaced_service_account(
                        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                    )
                except ApiException as e:
                    if e.status != 409:
                        raise
            tr = core.create_namespaced_service_account_token(
                name,
                namespace,
                client.AuthenticationV1TokenRequest(
                    spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
                ),
            )
        token = tr.status.token
        path = self._dir / f"sa-{namespace}-{name}.kubeconfig"
        user = f"system:serviceaccount:{namespace}:{name}"
        self._write_kubeconfig(path, user, {"token": token})
        return path

    # ------------------------------------------------------------------ internals
    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("control plane not started")
        return self.workdir

    def _openssl(self, *args: str) -> None:
        r = subprocess.run(["openssl", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise ControlPlaneError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

    def _make_pki(self) -> None:
        pki = self._dir / "pki"
        pki.mkdir(exist_ok=True)
        ca_key, ca_crt = pki / "ca.key", pki / "ca.crt"
        self._openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca_crt),
            "-days",
            "7",
            "-subj",
            "/CN=vitpipeline-testbed-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        )

        def leaf(stem: str, subj: str, ext: str) -> None:
            key, csr, crt, extf = (pki / f"{stem}.{s}" for s in ("key", "csr", "crt", "ext"))
            extf.write_text(ext)
            self._openssl(
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", subj
            )
            self._openssl(
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(ca_crt),
                "-CAkey",
                str(ca_key),
                "-CAcreateserial",
                "-out",
                str(crt),
                "-days",
                "7",
                "-sha256",
                "-extfile",
                str(extf),
            )

        leaf(
            "apiserver",
            "/CN=kube-apiserver",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,"
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
            "DNS:kubernetes.default.svc.cluster.local\n",
        )
        client_ext = (
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=clientAuth\n"
        )
        leaf("admin", "/O=system:masters/CN=vitpipeline-admin", client_ext)
        # Bound by the bootstrap RBAC policy; with --use-service-account-credentials each
        # controller then runs as its own kube-system ServiceAccount, as in a real cluster.
        leaf("kube-controller-manager", "/CN=system:kube-controller-manager", client_ext)
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(pki / "sa.key"))
        self._openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))

    def _write_kubeconfig(self, path: Path, user: str, user_fields: dict) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testbed",
                    "cluster": {"server": self.server, "certificate-authority-data": _b64(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": user_fields}],
            "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": user}}],
            "current-context": "testbed",
        }
        path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML; kubectl and the client read it
        path.chmod(0o600)

    def _client_cert_kubeconfig(self, path: Path, stem: str, user: str) -> None:
        pki = self._dir / "pki"
        self._write_kubeconfig(
            path,
            user,
            {
                "client-certificate-data": _b64(pki / f"{stem}.crt"),
                "client-key-data": _b64(pki / f"{stem}.key"),
            },
        )

    def _spawn(self, name: str, argv: list[str]) -> _Proc:
        proc = _Proc(name, argv, self._dir / f"{name}.log")
        self._procs[name] = proc
        proc.start()
        return proc

    def _fail(self, msg: str) -> None:
        parts = [msg]
        for name, p in self._procs.items():
            parts.append(f"----- {name} log ({p.log}), last lines -----\n{p.tail()}")
        text = "\n".join(parts)
        print(text, file=sys.stderr)
        raise ControlPlaneError(text)

    def _wait(self, what: str, proc: _Proc, probe, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last = None
        while time.monotonic() < deadline:
            if not proc.alive():
                code = proc.popen.returncode if proc.popen else None
                self._fail(f"{proc.name} exited (code {code}) while waiting for {what}")
            try:
                if probe():
                    return
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last = e
            time.sleep(0.25)
        self._fail(f"timed out after {timeout or self.start_timeout}s waiting for {what} (last error: {last!r})")

    @staticmethod
    def _wait_port_free(port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    return
                except OSError:
                    time.sleep(0.2)
        raise ControlPlaneError(f"port {port} still in use")

    def _start_etcd(self) -> None:
        self.etcd_client_port, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{self.etcd_client_port}", f"http://127.0.0.1:{peer}"
        proc = self._spawn(
            "etcd",
            [
                str(self.bins.etcd),
                "--name=testbed",
                f"--data-dir={self._dir / 'etcd-data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=testbed={peer_url}",
                "--unsafe-no-fsync=true",  # test data; no durability needed, much faster
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            with urllib.request.urlopen(f"{client_url}/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"

        self._wait("etcd /health", proc, healthy)

    def _apiserver_ssl(self) -> ssl.SSLContext:
        pki = self._dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def _wait_apiserver_ready(self) -> None:
        ctx = self._apiserver_ssl()

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=5) as r:
                return r.status == 200

        self._wait("kube-apiserver /readyz", self._procs["kube-apiserver"], ready)

    def _start_apiserver(self) -> None:
        pki = self._dir / "pki"
        self.apiserver_port = free_port()
        self._spawn(
            "kube-apiserver",
            [
                str(self.bins.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_client_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # No real node network: don't publish 127.0.0.1 as the `kubernetes` Service endpoint.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                # Without this a SIGTERM waits ~60s for the controller manager's open watches.
                "--shutdown-watch-termination-grace-period=2s",
            ],
        )
        self._client_cert_kubeconfig(self.kubeconfig, "admin", "vitpipeline-admin")
        self._wait_apiserver_ready()

    def _start_controller_manager(self) -> None:
        pki = self._dir / "pki"
        kcfg = self._dir / "kube-controller-manager.kubeconfig"
        self._client_cert_kubeconfig(kcfg, "kube-controller-manager", "system:kube-controller-manager")
        port = free_port()
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.bins.kube_controller_manager),
                f"--kubeconfig={kcfg}",
                f"--authentication-kubeconfig={kcfg}",
                f"--authorization-kubeconfig={kcfg}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self._dir / 'kcm-certs'}",
                "--leader-elect=false",
                "--controllers=" + ",".join(CONTROLLERS),
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE

        def healthy() -> bool:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=insecure, timeout=5) as r:
                return r.status == 200

        self._wait("kube-controller-manager /healthz", proc, healthy)

        # Controllers really acting on the API: the serviceaccount controller creates `default`.
        ctx = self._apiserver_ssl()

        def default_sa() -> bool:
            url = f"{self.server}/api/v1/namespaces/default/serviceaccounts/default"
            try:
                with urllib.request.urlopen(url, context=ctx, timeout=5) as r:
                    return r.status == 200
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return False
                raise

        self._wait("the serviceaccount controller to create default/default", proc, default_sa)
