"""deploy/kubernetes and deploy/monitoring: the manifests parse and keep the
invariants that decide whether a fleet strands mail (SPEC §11.4).

- terminationGracePeriodSeconds exceeds twice drain_timeout (delivery, then
  hand-over), so Kubernetes never kills a pod in the middle of its drain;
- readiness on /readyz, liveness on /healthz, on the UI port mtad listens on;
- one PersistentVolumeClaim per pod for /data (volumeClaimTemplates), keys
  from a Secret mounted read-only, a 96 Mi memory request;
- drain_relay names the internal Service, on a port that reaches the pods'
  SMTP listener, and that Service carries no PROXY protocol while the
  public one does (smtpd_proxy_protocol and smtpd_proxy_networks set);
- the PodDisruptionBudget and ServiceMonitor select what exists;
- every metric the alert rules and the dashboard use is one mtad exports.

`kubectl kustomize` (offline) renders the kustomization when kubectl is
installed; `kubectl apply --dry-run=client` needs an API server and is not run.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed (.ci/deps.sh)")

K8S = os.path.join(ROOT, "deploy", "kubernetes")
MON = os.path.join(ROOT, "deploy", "monitoring")


def load_all(directory):
    docs = []
    for name in sorted(os.listdir(directory)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(directory, name)) as f:
                docs += [(name, d) for d in yaml.safe_load_all(f) if d]
    return docs


@pytest.fixture(scope="module")
def k8s():
    docs = load_all(K8S)
    by = {}
    for name, d in docs:
        assert "kind" in d and "apiVersion" in d, name
        by.setdefault(d["kind"], []).append(d)
    return by


def one(k8s, kind, name=None):
    items = [d for d in k8s.get(kind, []) if name is None or d["metadata"]["name"] == name]
    assert len(items) == 1, "%s %s: %d" % (kind, name, len(items))
    return items[0]


def seconds(text):
    m = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    assert m, text
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def mtad_env(k8s):
    """The MTA_* variables the container gets: ConfigMaps it imports, then its own env."""
    sts = one(k8s, "StatefulSet", "mtad")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for src in c.get("envFrom", []):
        cm = one(k8s, "ConfigMap", src["configMapRef"]["name"])
        env.update(cm["data"])
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = None       # from a Secret or the pod
    return sts, c, env


def port_number(c, port):
    if isinstance(port, int):
        return port
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port in ports, port
    return ports[port]


def test_grace_period_exceeds_the_drain(k8s):
    sts, _c, env = mtad_env(k8s)
    drain = seconds(env.get("MTA_DRAIN_TIMEOUT", "60s"))
    grace = sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > drain, (grace, drain)
    assert grace > 2 * drain + 3, "delivery and hand-over each take up to drain_timeout"


def test_probes_on_the_right_paths_and_port(k8s):
    _sts, c, env = mtad_env(k8s)
    ui = int(env.get("MTA_UI_PORT", "80"))
    r, l = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
    assert r["path"] == "/readyz"
    assert l["path"] == "/healthz"
    assert port_number(c, r["port"]) == ui and port_number(c, l["port"]) == ui


def test_one_pvc_per_pod_for_data_and_keys_from_a_secret(k8s):
    sts, c, env = mtad_env(k8s)
    spec = sts["spec"]
    claims = spec["volumeClaimTemplates"]
    assert [t["metadata"]["name"] for t in claims] == ["data"]
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/data"]["name"] == "data"
    vols = {v["name"]: v for v in spec["template"]["spec"].get("volumes", [])}
    assert "data" not in vols, "/data must come from the claim template, not a shared volume"
    assert mounts["/keys"].get("readOnly") is True
    assert "secret" in vols[mounts["/keys"]["name"]]
    assert "/logs" in mounts
    assert env.get("MTA_DATA_DIR", "/data") == "/data"     # the image's default
    sc = spec["template"]["spec"]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["fsGroup"] == sc["runAsUser"]


def test_memory_request(k8s):
    _sts, c, _env = mtad_env(k8s)
    assert c["resources"]["requests"]["memory"] == "96Mi"


def test_drain_relay_names_the_internal_service(k8s):
    sts, c, env = mtad_env(k8s)
    m = re.fullmatch(r"\[([^\]]+)\]:(\d+)", env["MTA_DRAIN_RELAY"])
    assert m, env["MTA_DRAIN_RELAY"]
    host, port = m.group(1), int(m.group(2))
    svc_name, ns = host.split(".")[0], host.split(".")[1]
    assert host == "%s.%s.svc.cluster.local" % (svc_name, ns)
    svc = one(k8s, "Service", svc_name)
    assert svc["metadata"]["namespace"] == ns == sts["metadata"]["namespace"]
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert svc["spec"]["selector"].items() <= \
        sts["spec"]["template"]["metadata"]["labels"].items()
    target = [p["targetPort"] for p in svc["spec"]["ports"] if p["port"] == port]
    assert target, "no port %d on %s" % (port, svc_name)
    smtp = int(env["MTA_SMTP_LISTEN"].rsplit(":", 1)[1])
    assert port_number(c, target[0]) == smtp
    # pods reach each other without PROXY protocol: not a proxy network
    assert "svc.cluster.local" in host


def test_public_service_sends_proxy_protocol_to_proxy_networks(k8s):
    _sts, c, env = mtad_env(k8s)
    assert env["MTA_SMTPD_PROXY_PROTOCOL"] == "haproxy"
    assert env["MTA_SMTPD_PROXY_NETWORKS"].strip() != ""
    pub = one(k8s, "Service", "mtad")
    assert pub["spec"]["type"] == "LoadBalancer"
    assert any("proxy" in k.lower() for k in pub["metadata"].get("annotations", {}))
    ports = {p["port"]: port_number(c, p["targetPort"]) for p in pub["spec"]["ports"]}
    assert ports[25] == int(env["MTA_SMTP_LISTEN"].rsplit(":", 1)[1])
    assert set(ports) == {25, 465, 587}


def test_pdb_and_servicemonitor_select_what_exists(k8s):
    sts, c, env = mtad_env(k8s)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    pdb = one(k8s, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1
    sm = one(k8s, "ServiceMonitor")
    want = sm["spec"]["selector"]["matchLabels"]
    svcs = [s for s in k8s["Service"] if want.items() <= s["metadata"]["labels"].items()]
    assert len(svcs) == 1, [s["metadata"]["name"] for s in svcs]
    ep = sm["spec"]["endpoints"][0]
    assert ep["path"] == "/metrics"
    sp = [p for p in svcs[0]["spec"]["ports"] if p["name"] == ep["port"]]
    assert sp and port_number(c, sp[0]["targetPort"]) == int(env["MTA_UI_PORT"])


def test_kustomization_lists_every_manifest():
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    files = sorted(n for n in os.listdir(K8S) if n.endswith(".yaml") and n != "kustomization.yaml")
    assert sorted(k["resources"]) == files


def test_kubectl_kustomize_renders_offline():
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    p = subprocess.run(["kubectl", "kustomize", K8S], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0 and "unknown command" in p.stderr:
        pytest.skip("this kubectl has no kustomize")
    assert p.returncode == 0, p.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(p.stdout) if d]
    assert "StatefulSet" in kinds and "ServiceMonitor" in kinds


def exported_metrics():
    src = ""
    for d in ("metrics", "http"):           # the encoder and whatever feeds it
        base = os.path.join(ROOT, "src", d)
        for n in sorted(os.listdir(base)):
            if n.endswith(".c"):
                with open(os.path.join(base, n)) as f:
                    src += f.read()
    names = set(re.findall(r'"(mta_[a-z_]+)"', src)) | set(re.findall(r"# TYPE (mta_[a-z_]+)", src))
    hist = set(re.findall(r"# TYPE (mta_[a-z_]+) histogram", src))
    for h in hist:
        names |= {h + "_bucket", h + "_sum", h + "_count"}
    assert "mta_queue_messages" in names and "mta_disk_state" in names, names
    return names


def used_metrics(text):
    return set(re.findall(r"\b(mta_[a-z_]+)", text))


def test_alert_rules_cover_the_cases_with_real_metrics():
    with open(os.path.join(MON, "prometheus-rules.yaml")) as f:
        doc = yaml.safe_load(f)
    rules = [r for g in doc["spec"]["groups"] for r in g["rules"]]
    exprs = {r["alert"]: r["expr"] for r in rules}
    names = exported_metrics()
    for alert, expr in exprs.items():
        unknown = used_metrics(expr) - names
        assert not unknown, "%s uses %s, which mtad does not export" % (alert, unknown)
    text = " ".join(exprs.values())
    assert "mta_queue_messages" in text                     # queue growing
    assert "mta_queue_oldest_message_age_seconds" in text   # oldest message age
    assert "mta_disk_state" in text                         # disk state
    assert "mta_recipients_deferred_total" in text and "mta_recipients_delivered_total" in text


def test_dashboard_uses_real_metrics():
    with open(os.path.join(MON, "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    names = exported_metrics()
    for e in exprs:
        assert not (used_metrics(e) - names), e
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
