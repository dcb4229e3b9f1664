"""charts/vitpipeline rendered by the pinned helm, no cluster: lint, schema refusals, RBAC equal
to vitoperator.rbac, restricted pod security, pinned images, documented values."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from vitoperator.rbac import cluster_rules, namespaced_rules

from chart.helmchart import CHART, by_kind, chart_metadata, pod_specs, set_list

NAMESPACED = set_list("watchNamespaces", ["team-a", "team-b"])


def canonical(rules: list[dict]) -> list[str]:
    """Rules as comparable strings: the order of rules and of list items carries no meaning."""
    return sorted(json.dumps({k: sorted(v) for k, v in r.items()}, sort_keys=True) for r in rules)


def test_chart_metadata():
    meta = chart_metadata()
    assert (meta["apiVersion"], meta["name"], meta["version"], meta["appVersion"]) == (
        "v2",
        "vitpipeline",
        "0.1.0",
        "0.1.0",
    )
    assert meta["dependencies"] == [
        {
            "name": "kuberay-operator",
            "version": "1.6.0",
            "repository": "https://ray-project.github.io/kuberay-helm/",
            "condition": "kuberay.enabled",
        }
    ]
    assert yaml.safe_load((CHART / "values.yaml").read_text())["kuberay"] == {"enabled": False}


def test_helm_refuses_a_missing_dependency_even_when_disabled(helm):
    """Why the tests use a copy with a stand-in (chart.helmchart): helm checks charts/ before
    it evaluates conditions. If this starts passing, the stand-in can go."""
    assert not (CHART / "charts").exists(), "charts/vitpipeline/charts/ must not be committed"
    proc = helm.run("template", "rel", str(CHART), check=False)
    assert proc.returncode != 0
    assert "missing in charts/ directory: kuberay-operator" in proc.stderr


@pytest.mark.parametrize("args", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_lint_strict(helm, chart, args):
    proc = helm.run("lint", "--strict", str(chart), *args)
    assert "0 chart(s) failed" in proc.stdout


def test_one_resource_kind_per_template_file(helm, chart):
    out = helm.run("template", "rel", str(chart), "--namespace", "ops", *NAMESPACED).stdout
    kinds: dict[str, set[str]] = {}
    for block in out.split("\n---\n"):
        source = re.search(r"^# Source: (\S+)$", block, re.M)
        doc = yaml.safe_load(block)
        if source and doc:
            kinds.setdefault(source.group(1), set()).add(doc["kind"])
    assert kinds == {
        "vitpipeline/templates/serviceaccount.yaml": {"ServiceAccount"},
        "vitpipeline/templates/clusterrole.yaml": {"ClusterRole"},
        "vitpipeline/templates/clusterrolebinding.yaml": {"ClusterRoleBinding"},
        "vitpipeline/templates/role.yaml": {"Role"},
        "vitpipeline/templates/rolebinding.yaml": {"RoleBinding"},
        "vitpipeline/templates/deployment.yaml": {"Deployment"},
        "vitpipeline/templates/networkpolicy.yaml": {"NetworkPolicy"},
    }


def test_rbac_cluster_wide_equals_rbac_py(helm, chart):
    docs = helm.template(chart)
    [cr] = by_kind(docs, "ClusterRole")
    assert canonical(cr["rules"]) == canonical(cluster_rules() + namespaced_rules())
    assert by_kind(docs, "Role") == [] and by_kind(docs, "RoleBinding") == []
    [crb] = by_kind(docs, "ClusterRoleBinding")
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cr["metadata"]["name"],
    }
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": "rel-vitpipeline", "namespace": "ops"}]


def test_rbac_namespaced_equals_rbac_py(helm, chart):
    docs = helm.template(chart, *NAMESPACED)
    [cr] = by_kind(docs, "ClusterRole")
    assert canonical(cr["rules"]) == canonical(cluster_rules())
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert canonical(role["rules"]) == canonical(namespaced_rules())
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for b in bindings:
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rel-vitpipeline"}
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "rel-vitpipeline", "namespace": "ops"}]
    [sa] = by_kind(docs, "ServiceAccount")
    assert (sa["metadata"]["name"], sa["metadata"]["namespace"]) == ("rel-vitpipeline", "ops")


@pytest.mark.parametrize("args", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_rbac_least_privilege(helm, chart, args):
    rules = [r for d in helm.template(chart, *args) if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]]
    assert rules
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no nonResourceURLs/resourceNames
        for values in rule.values():
            assert not any("*" in v for v in values), rule
        assert not {"secrets", "pods/exec", "pods/log", "serviceaccounts/token"} & set(rule["resources"]), rule
        if "pods" in rule["resources"]:  # only to say why a Ray cluster never started
            assert (rule["resources"], rule["verbs"]) == (["pods"], ["list"]), rule
        assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(rule["verbs"]), rule


def test_operator_deployment(helm, chart):
    docs = helm.template(
        chart,
        *NAMESPACED,
        "--set",
        "resyncSeconds=12",
        "--set",
        "s3.endpointUrl=http://minio:9000",
        "--set",
        "s3.region=eu-west-1",
        "--set",
        "s3.credentialsSecret.name=op-s3",
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/r",
    )
    [dep] = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]
    assert pod["metadata"]["labels"] | dep["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert pod["spec"]["serviceAccountName"] == "rel-vitpipeline"
    [c] = pod["spec"]["containers"]
    assert c["command"] == ["vitpipeline-operator"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env == {
        "WATCH_NAMESPACE": "team-a,team-b",
        "VITOPERATOR_RESYNC_SECONDS": "12",
        "VITOPERATOR_LIVENESS": "http://0.0.0.0:8080/healthz",
        "AWS_ENDPOINT_URL": "http://minio:9000",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": {"secretKeyRef": {"name": "op-s3", "key": "AWS_ACCESS_KEY_ID"}},
        "AWS_SECRET_ACCESS_KEY": {"secretKeyRef": {"name": "op-s3", "key": "AWS_SECRET_ACCESS_KEY"}},
    }
    assert c["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    [sa] = by_kind(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}
    labels = dep["metadata"]["labels"]
    assert {
        "app.kubernetes.io/name": "vitpipeline",
        "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/version": "0.1.0",
        "app.kubernetes.io/managed-by": "Helm",
    }.items() <= labels.items()
    for d in docs:
        assert d["metadata"]["labels"] == labels, d["kind"]


def test_defaults_watch_the_cluster_without_static_credentials(helm, chart):
    [dep] = by_kind(helm.template(chart), "Deployment")
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WATCH_NAMESPACE"]["value"] == ""
    assert not {"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)


@pytest.mark.parametrize(
    "args",
    [[], NAMESPACED, ["--set", "podSecurityContext.runAsUser=1000"]],
    ids=["defaults", "namespaced", "other-uid"],
)
def test_every_container_passes_restricted(helm, chart, args):
    specs = pod_specs(helm.template(chart, *args))
    assert specs
    for spec in specs:
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
            assert not sc.get("privileged"), c["name"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert set(volumes) == {"tmp"} and "emptyDir" in volumes["tmp"]  # restricted allows no hostPath
        assert spec["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "args, image",
    [
        ([], "vitpipeline/operator:0.1.0"),
        (["--set", "image.tag=0.2.0-rc1"], "vitpipeline/operator:0.2.0-rc1"),
        (["--set", f"image.digest={DIGEST}"], f"vitpipeline/operator@{DIGEST}"),
        (
            ["--set", "image.tag=0.2.0", "--set", f"image.digest={DIGEST}", "--set", "image.repository=reg:5000/op"],
            f"reg:5000/op@{DIGEST}",
        ),
    ],
)
def test_image_is_pinned(helm, chart, args, image):
    [spec] = pod_specs(helm.template(chart, *args))
    assert spec["containers"][0]["image"] == image
    assert not image.endswith(":latest")


@pytest.mark.parametrize(
    "args, names",
    [
        (["--set", "image.tag=latest"], ["image.tag", '"latest" is not allowed']),
        (["--set", "extra=1"], ["additional properties 'extra' not allowed"]),
        (["--set", "image.name=x"], ["/image", "additional properties 'name' not allowed"]),
        (["--set", "s3.credentialsSecret.password=x"], ["/s3/credentialsSecret", "'password' not allowed"]),
        (["--set", "resources.requests.gpu=1"], ["/resources/requests", "'gpu' not allowed"]),
        (["--set", "resyncSeconds=soon"], ["/resyncSeconds", "want integer"]),
        (["--set", "serviceAccount.create=yes"], ["/serviceAccount/create", "want boolean"]),
        (["--set", "kuberay.enabled=1"], ["/kuberay/enabled", "want boolean"]),
        (["--set", "watchNamespaces=team-a"], ["/watchNamespaces", "want array"]),
        (set_list("watchNamespaces", ["Team_A"]), ["/watchNamespaces/0", "does not match pattern"]),
        (["--set", "image.digest=sha256:short"], ["/image/digest", "does not match pattern"]),
        (["--set", "podSecurityContext.runAsUser=0"], ["/podSecurityContext/runAsUser", "minimum"]),
        (["--set", "serviceAccount.create=false"], ["serviceAccount.name: required"]),
    ],
)
def test_bad_values_are_refused_naming_the_key(helm, chart, args, names):
    proc = helm.run("template", "rel", str(chart), *args, check=False)
    assert proc.returncode != 0, proc.stdout[:500]
    for name in names:
        assert name in proc.stderr, proc.stderr


def schema_objects(node: dict, path: str = ""):
    if node.get("type") == "object" or "properties" in node:
        yield path, node
    for name, sub in (node.get("properties") or {}).items():
        yield from schema_objects(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from schema_objects(node["items"], f"{path}[]")
    for name, sub in (node.get("definitions") or {}).items():
        yield from schema_objects(sub, f"#{name}")


# Values the chart hands to others unchecked: the dependency's own values, and helm's globals.
PASS_THROUGH = {".kuberay-operator", ".global"}


def test_schema_closes_every_object():
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path, node in schema_objects(schema):
        if path in PASS_THROUGH:
            continue
        extra = node.get("additionalProperties")
        # Either closed, or a map whose every value is typed (labels, annotations, nodeSelector).
        assert extra is False or (isinstance(extra, dict) and "type" in extra), path


def test_schema_covers_exactly_the_values():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(schema["properties"]) - {p.lstrip(".") for p in PASS_THROUGH} == set(values)


# Kubernetes blocks documented as a whole where their parent is: their keys are Kubernetes's.
K8S_BLOCKS = {"resources.requests", "resources.limits"}


def test_every_value_is_documented_starting_with_its_name():
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    undocumented = []
    for i, line in enumerate(lines):
        m = re.match(r"^( *)([A-Za-z][\w-]*):", line)
        if not m:
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if any(path.startswith(b + ".") for b in K8S_BLOCKS) or path in K8S_BLOCKS:
            continue
        j = i - 1
        while j >= 0 and lines[j].strip().startswith("#") and j - 1 >= 0 and lines[j - 1].strip().startswith("#"):
            j -= 1
        first = lines[j].strip() if j >= 0 else ""
        if not (first.startswith(f"# {path} ") or first.startswith(f"# {key} ")):
            undocumented.append(path)
    assert undocumented == []
    assert re.search(r"^[a-z][A-Za-z]*:", "\n".join(lines), re.M)
    for key in yaml.safe_load("\n".join(lines)):
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", key), f"{key} is not lowerCamelCase"
