"""The install manifests: every kustomization renders, every object is valid for Kubernetes 1.32, and
the pieces agree with each other and with the operator's code (flags, ports, image, RBAC, peering).

Validation is strict (unknown fields are errors, as with ``kubectl apply --validate=strict``) against
the Kubernetes 1.32 OpenAPI schemas shipped by ``kubernetes-validate``. Custom resources are
validated against the openAPIV3Schema of the CRD that the same install provides.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    OPERATOR_NAMESPACE,
    ROOT,
    find,
    flag_values,
    one,
    operator_container,
    render,
    runner_jobs,
)

# Custom resources whose CRDs another project installs (cert-manager): not validated here; the
# webhook overlay's README says cert-manager must be installed first.
EXTERNAL_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}


def _crd_schemas(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for crd in find(objects, "CustomResourceDefinition"):
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_object_validates_against_kubernetes_schemas(directory: str) -> None:
    objects = render(directory)
    assert objects, f"{directory} renders nothing"
    crds = _crd_schemas(objects)
    checked = 0
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if key in crds:
            jsonschema.Draft202012Validator(crds[key]).validate(obj)
        elif key in EXTERNAL_KINDS:
            continue
        else:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                pytest.fail(f"{directory}: {name} is invalid at {path}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{directory}: {name}: no Kubernetes {KUBERNETES_VERSION} schema and no CRD here")
        checked += 1
    assert checked >= len(objects) - 2


def test_validation_catches_a_typo() -> None:
    """The strict validation above would notice a misspelt field (so its passing means something)."""
    deployment = one(render("deploy"), "Deployment", "flowlib-operator")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_runner_jobs_validate_against_kubernetes_schemas() -> None:
    for job in runner_jobs():
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_namespaced_objects_name_their_namespace(directory: str) -> None:
    """No object relies on the namespace of the current kubectl context."""
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    cluster_scoped |= {"ClusterKopfPeering", "ValidatingWebhookConfiguration"}
    for obj in render(directory):
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace"), f"{obj['kind']}/{obj['metadata']['name']} has no namespace"


def test_default_install_is_the_base() -> None:
    assert render("deploy") == render("deploy/base")


def test_crds_are_the_generated_ones() -> None:
    """deploy/ installs crds/ unchanged but for the part-of label."""
    rendered = {c["metadata"]["name"]: c for c in find(render("deploy"), "CustomResourceDefinition")}
    for path in sorted((ROOT / "crds").glob("*.flowlib.dev.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        installed = rendered[crd["metadata"]["name"]]
        assert installed["spec"] == crd["spec"]
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= set(rendered)


# -- the operator Deployment ---------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_deployment_runs_one_replica_that_never_overlaps(directory: str) -> None:
    deployment = one(render(directory), "Deployment", "flowlib-operator")
    assert deployment["metadata"]["namespace"] == OPERATOR_NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "flowlib-operator"
    args = operator_container(render(directory))["args"]
    assert "--standalone" not in args, "without peering a second replica would double-act"
    assert flag_values(args, "--peering") == ["flowlib-operator"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_runner_image_is_the_operator_image(directory: str) -> None:
    from flowlib_operator.main import DEFAULT_IMAGE

    container = operator_container(render(directory))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == DEFAULT_IMAGE
    assert env["FLOWLIB_RUNNER_IMAGE"] == container["image"]
    assert container["command"] == ["flowlib-operator"]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_probes_and_metrics_use_the_ports_the_operator_serves(directory: str) -> None:
    objects = render(directory)
    container = operator_container(objects)
    args = container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    (liveness,) = flag_values(args, "--liveness")
    assert liveness == f"http://0.0.0.0:{ports['health']}/healthz"
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], get["port"]) == ("/healthz", "health")
    (metrics_port,) = flag_values(args, "--metrics-port")
    assert int(metrics_port) == ports["metrics"]
    service = one(objects, "Service", "flowlib-operator-metrics")
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["metrics"]
    assert annotations["prometheus.io/path"] == "/metrics"
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    template_labels = one(objects, "Deployment", "flowlib-operator")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()


def test_operator_pod_does_not_match_the_operators_own_watch() -> None:
    """The operator watches pods labelled managed-by=flowlib-operator: its own pod must not be one."""
    from flowlib_operator.naming import LABEL_MANAGED_BY, MANAGED_BY

    labels = one(render("deploy"), "Deployment", "flowlib-operator")["spec"]["template"]["metadata"]["labels"]
    assert labels.get(LABEL_MANAGED_BY) != MANAGED_BY


def test_deployment_has_resources_and_a_writable_tmp_only() -> None:
    objects = render("deploy")
    container = operator_container(objects)
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    pod = one(objects, "Deployment", "flowlib-operator")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["securityContext"]["runAsUser"] == 65532


def test_operator_namespace_enforces_restricted_pod_security() -> None:
    namespace = one(render("deploy"), "Namespace", OPERATOR_NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# -- RBAC and peering ------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_one_apply_installs_it(directory: str) -> None:
    """No object is of a kind whose CRD the same apply creates: `kubectl apply -k` maps every kind
    before it creates anything, so such an object fails the first apply on a fresh cluster with
    "no matches for kind ... ensure CRDs are installed first" (the ClusterKopfPeering once did)."""
    objects = render(directory)
    created = {
        (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
        for crd in find(objects, "CustomResourceDefinition")
        for version in crd["spec"]["versions"]
    }
    needing = [f"{o['kind']}/{o['metadata']['name']}" for o in objects if (o["apiVersion"], o["kind"]) in created]
    assert needing == [], f"{directory}: these need a CRD of the same apply: {needing}"


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_operator_may_create_the_peering_it_waits_for(directory: str) -> None:
    """The peering objects the operator makes at start (named by --peering, cluster-wide or in each
    --namespace) are ones its installed RBAC lets it create and keep."""
    from flowlib_operator.peering import peering_targets

    objects = render(directory)
    args = operator_container(objects)["args"]
    (name,) = flag_values(args, "--peering")
    namespaces = None if "--all-namespaces" in args else flag_values(args, "--namespace")
    needed = {"create", "get", "list", "watch", "patch"}
    for target in peering_targets(name, namespaces):
        if target.namespace is None:
            granted = _rules(one(objects, "ClusterRole", "flowlib-operator"))
        else:
            bound = [b for b in find(objects, "RoleBinding") if b["metadata"]["namespace"] == target.namespace]
            assert bound, f"no RoleBinding in {target.namespace} for its {target.kind}"
            granted = set().union(*(_rules(one(objects, "ClusterRole", b["roleRef"]["name"])) for b in bound))
        held = {verb for group, resource, verb in granted if (group, resource) == ("kopf.dev", target.ref.plural)}
        assert needed <= held, f"{directory}: {target.describe()} needs {sorted(needed - held)}"


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _source_cluster_role() -> dict[str, Any]:
    docs = yaml.safe_load_all((ROOT / "deploy/base/operator-rbac.yaml").read_text(encoding="utf-8"))
    return next(d for d in docs if d["kind"] == "ClusterRole")


@pytest.mark.parametrize("directory", ["deploy", "deploy/overlays/webhook"])
def test_cluster_wide_installs_grant_exactly_operator_rbac(directory: str) -> None:
    """The rules that tests/operator proves sufficient are the ones installed: nothing added on the way."""
    objects = render(directory)
    roles = find(objects, "ClusterRole") + find(objects, "Role")
    assert [r["metadata"]["name"] for r in roles] == ["flowlib-operator"]
    assert _rules(roles[0]) == _rules(_source_cluster_role())
    binding = one(objects, "ClusterRoleBinding", "flowlib-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "flowlib-operator", "namespace": OPERATOR_NAMESPACE}
    ]
    assert not find(objects, "ClusterKopfPeering"), "the operator creates its peering object (peering.py)"
    assert not find(objects, "KopfPeering")


def test_namespaced_overlay_grants_the_same_rules_only_in_its_namespaces() -> None:
    objects = render("deploy/overlays/namespaced")
    source = _rules(_source_cluster_role())
    cluster_only = {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")}
    cluster_peering = {r for r in source if r[1] == "clusterkopfpeerings"}
    cluster_wide = one(objects, "ClusterRole", "flowlib-operator")
    assert _rules(cluster_wide) == cluster_only
    per_namespace = _rules(one(objects, "ClusterRole", "flowlib-operator-namespaced"))
    namespaced_peering = {("kopf.dev", "kopfpeerings", verb) for _, _, verb in cluster_peering}
    # SubjectAccessReviews serve the admission webhook, which is a cluster-wide install of its own
    # (deploy/overlays/webhook): the namespaced operator checks borrowed objects by label only.
    webhook_only = {("authorization.k8s.io", "subjectaccessreviews", "create")}
    expected = (source - cluster_only - cluster_peering - webhook_only) | namespaced_peering
    assert per_namespace == expected
    assert not find(objects, "ClusterKopfPeering")
    assert all(b["roleRef"]["name"] == "flowlib-operator" for b in find(objects, "ClusterRoleBinding"))


def test_namespaced_overlay_namespaces_agree() -> None:
    """Each --namespace has a RoleBinding there, and nothing else has one."""
    objects = render("deploy/overlays/namespaced")
    args = operator_container(objects)["args"]
    assert "--all-namespaces" not in args
    watched = set(flag_values(args, "--namespace"))
    assert watched
    bindings = find(objects, "RoleBinding", "flowlib-operator")
    assert {b["metadata"]["namespace"] for b in bindings} == watched
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "flowlib-operator-namespaced",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "flowlib-operator", "namespace": OPERATOR_NAMESPACE}
        ]
    assert not find(objects, "KopfPeering"), "the operator creates one in each watched namespace (peering.py)"


# -- the webhook overlay ---------------------------------------------------------------------------


def test_webhook_overlay_wiring() -> None:
    objects = render("deploy/overlays/webhook")
    container = operator_container(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["FLOWLIB_OPERATOR_WEBHOOK_PORT"]) == ports["webhooks"]
    service = one(objects, "Service", "flowlib-operator-webhook")
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhooks", "protocol": "TCP"}]
    certificate = one(objects, "Certificate", "flowlib-operator-webhook")
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert host in certificate["spec"]["dnsNames"]
    pod = one(objects, "Deployment", "flowlib-operator")["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert secrets[mounts[env["FLOWLIB_OPERATOR_WEBHOOK_TLS_DIR"]]] == certificate["spec"]["secretName"]
    config = one(objects, "ValidatingWebhookConfiguration", "flowlib-operator")
    namespace, name = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].split("/")
    assert (namespace, name) == (certificate["metadata"]["namespace"], certificate["metadata"]["name"])
    resources = set()
    for webhook in config["webhooks"]:
        target = webhook["clientConfig"]["service"]
        assert (target["name"], target["namespace"], target["port"]) == (service["metadata"]["name"], namespace, 443)
        assert webhook["sideEffects"] == "None"
        for rule in webhook["rules"]:
            assert rule["apiGroups"] == ["flowlib.dev"]
            assert not any("/" in r for r in rule["resources"]), "status writes must not go through the webhook"
            resources.update(rule["resources"])
    assert resources == {"flows", "flowruns", "flowschedules"}


def test_ca_bundle_patch_fits_the_webhook_configuration() -> None:
    """The optional no-cert-manager patch addresses webhooks that exist."""
    patch = yaml.safe_load((ROOT / "deploy/overlays/webhook/ca-bundle.yaml").read_text(encoding="utf-8"))
    config = one(render("deploy/overlays/webhook"), "ValidatingWebhookConfiguration", "flowlib-operator")
    indexes = {int(op["path"].split("/")[2]) for op in patch}
    assert indexes == set(range(len(config["webhooks"])))
