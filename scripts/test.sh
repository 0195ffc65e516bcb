#!/usr/bin/env bash
# The project's test command: every check CI runs, in one place.
#
#   scripts/test.sh              run every step
#   scripts/test.sh STEP...      run only these steps (names below)
#
# Steps: crd examples helm hadolint node fmt clippy cargo-test fuzz
# Every step runs even when an earlier one failed; the exit status is non-zero when any
# step failed. Tools come from scripts/tools.sh (built once into the cache directory).
# Environment:
#   SOURCEBUILD_CACHE   cache root (default ~/.cache/sourcebuild-operator)
#   FUZZ_SECONDS        how long the fuzz step runs each cargo-fuzz target (default 20)
#   CARGO_TARGET_DIR    default $SOURCEBUILD_CACHE/cargo-target-<rustc version>, so a fresh
#                       clone (CI) reuses the compiled dependencies
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export SOURCEBUILD_CACHE=${SOURCEBUILD_CACHE:-$HOME/.cache/sourcebuild-operator}
chart=charts/sourcebuild-operator
all_steps=(crd examples helm hadolint node fmt clippy cargo-test fuzz)

tool() { "$repo/scripts/tools.sh" "$1"; }

# --- steps -------------------------------------------------------------------------------

step_crd() {
  scripts/sync-chart-crd.sh --check
}

step_examples() {
  local py
  py=$(tool pyyaml) || return 1
  "$py" scripts/check-examples.py crds/sourcebuild.dev_sourcebuilds.yaml examples/*.yaml
}

# Rendered objects as "Kind name namespace" lines, one per object.
objects() {
  "$PYYAML" -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d:
        m = d.get("metadata", {})
        print(d["kind"], m.get("name"), m.get("namespace", "-"))'
}

# expect DESCRIPTION COMMAND...: the command must succeed.
expect() {
  local what=$1
  shift
  if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; helm_failed=1; fi
}
# reject DESCRIPTION COMMAND...: the command must fail (used for values the chart refuses).
reject() {
  local what=$1
  shift
  if "$@" >/dev/null 2>&1; then echo "  FAIL $what (was accepted)"; helm_failed=1; else echo "  ok   $what"; fi
}

step_helm() {
  local helm out
  helm=$(tool helm) || return 1
  PYYAML=$(tool pyyaml) || return 1
  out=$(mktemp -d)
  helm_failed=0
  "$helm" version --short
  expect "helm lint (default values)" "$helm" lint --strict "$chart"
  expect "helm lint (watchNamespace=team-a, serviceMonitor on)" "$helm" lint --strict "$chart" \
    --set watchNamespace=team-a --set serviceMonitor.enabled=true
  expect "helm lint (watchNamespaces={team-a,team-b}, replicaCount=2)" "$helm" lint --strict "$chart" \
    --set 'watchNamespaces={team-a,team-b}' --set replicaCount=2

  # Cluster-wide mode (the default).
  "$helm" template sb "$chart" -n sourcebuild-system >"$out/default.yaml" || helm_failed=1
  objects <"$out/default.yaml" >"$out/default.objects" || helm_failed=1
  sed 's/^/    /' "$out/default.objects"
  expect "default: a ClusterRole and a ClusterRoleBinding" \
    grep -qE '^ClusterRoleBinding sb-sourcebuild-operator' "$out/default.objects"
  expect "default: no Role, no RoleBinding but leader election's" \
    bash -c "! grep -E '^(Role|RoleBinding) ' '$out/default.objects' | grep -qv ' sb-sourcebuild-operator-leader-election sourcebuild-system$'"
  expect "default: leader election: a Lease Role in the release namespace, --leader-elect, POD_NAME" bash -c "
    grep -qE '^Role sb-sourcebuild-operator-leader-election sourcebuild-system$' '$out/default.objects' &&
    grep -qE '^RoleBinding sb-sourcebuild-operator-leader-election sourcebuild-system$' '$out/default.objects' &&
    grep -q -- '- --leader-elect' '$out/default.yaml' && grep -q 'fieldPath: metadata.name' '$out/default.yaml'"
  expect "default: one replica, Recreate" bash -c "
    grep -q 'replicas: 1' '$out/default.yaml' && grep -q 'type: Recreate' '$out/default.yaml'"
  expect "replicaCount=2: RollingUpdate" bash -c "
    '$helm' template sb '$chart' -n sourcebuild-system --set replicaCount=2 |
      grep -q 'type: RollingUpdate'"
  expect "default: no --namespace flag" bash -c "! grep -q -- '--namespace' '$out/default.yaml'"
  expect "default: no ServiceMonitor" bash -c "! grep -q '^ServiceMonitor' '$out/default.objects'"
  expect "default: the controller's flags" grep -q -- '- --kaniko-image=ghcr.io/osscontainertools/kaniko:v' "$out/default.yaml"
  expect "default: the restricted securityContext" bash -c "
    grep -q 'runAsNonRoot: true' '$out/default.yaml' &&
    grep -q 'allowPrivilegeEscalation: false' '$out/default.yaml' &&
    grep -q 'readOnlyRootFilesystem: true' '$out/default.yaml' &&
    grep -q 'drop: \[\"ALL\"\]' '$out/default.yaml' &&
    grep -q 'type: RuntimeDefault' '$out/default.yaml'"
  expect "default: probes on /healthz and /readyz" bash -c "
    grep -q 'path: /healthz' '$out/default.yaml' && grep -q 'path: /readyz' '$out/default.yaml'"
  expect "default: SourceBuild roles aggregated to edit/admin and view" bash -c "
    grep -qE '^ClusterRole sb-sourcebuild-operator-edit -$' '$out/default.objects' &&
    grep -qE '^ClusterRole sb-sourcebuild-operator-view -$' '$out/default.objects' &&
    grep -q 'rbac.authorization.k8s.io/aggregate-to-edit: \"true\"' '$out/default.yaml' &&
    grep -q 'rbac.authorization.k8s.io/aggregate-to-admin: \"true\"' '$out/default.yaml' &&
    grep -q 'rbac.authorization.k8s.io/aggregate-to-view: \"true\"' '$out/default.yaml'"
  expect "aggregateToDefaultRoles=false: no aggregated roles" bash -c "
    ! '$helm' template sb '$chart' --set aggregateToDefaultRoles=false | grep -q 'aggregate-to-'"
  expect "default: RBAC never grants secrets or configmaps" \
    bash -c "! grep -qE 'secrets|configmaps' '$out/default.yaml'"

  # Namespace mode.
  "$helm" template sb "$chart" -n sourcebuild-system --set watchNamespace=team-a \
    --set serviceMonitor.enabled=true >"$out/ns.yaml" || helm_failed=1
  objects <"$out/ns.yaml" >"$out/ns.objects" || helm_failed=1
  sed 's/^/    /' "$out/ns.objects"
  expect "watchNamespace: a Role and a RoleBinding in team-a" bash -c "
    grep -qE '^Role sb-sourcebuild-operator team-a$' '$out/ns.objects' &&
    grep -qE '^RoleBinding sb-sourcebuild-operator team-a$' '$out/ns.objects'"
  expect "watchNamespace: no ClusterRole but the aggregated ones, no ClusterRoleBinding" \
    bash -c "! grep -E '^Cluster' '$out/ns.objects' | grep -qvE '^ClusterRole sb-sourcebuild-operator-(edit|view) -$'"
  expect "watchNamespace: the controller gets --namespace=team-a" \
    grep -q -- '- --namespace=team-a' "$out/ns.yaml"
  expect "serviceMonitor.enabled: a ServiceMonitor" grep -q '^ServiceMonitor ' "$out/ns.objects"

  # Several namespaces.
  "$helm" template sb "$chart" -n sourcebuild-system --set 'watchNamespaces={team-a,team-b}' \
    --set watchNamespace=team-c >"$out/multi.yaml" || helm_failed=1
  objects <"$out/multi.yaml" >"$out/multi.objects" || helm_failed=1
  expect "watchNamespaces: a Role and a RoleBinding in each namespace" bash -c "
    for ns in team-a team-b team-c; do
      grep -qE \"^Role sb-sourcebuild-operator \$ns\\\$\" '$out/multi.objects' &&
      grep -qE \"^RoleBinding sb-sourcebuild-operator \$ns\\\$\" '$out/multi.objects' || exit 1
    done"
  expect "watchNamespaces: no ClusterRole but the aggregated ones, no ClusterRoleBinding" \
    bash -c "! grep -E '^Cluster' '$out/multi.objects' | grep -qvE '^ClusterRole sb-sourcebuild-operator-(edit|view) -$'"
  expect "watchNamespaces: the controller gets --namespace=team-a,team-b,team-c" \
    grep -q -- '- --namespace=team-a,team-b,team-c' "$out/multi.yaml"
  reject "schema: watchNamespaces with a bad name" "$helm" template sb "$chart" --set 'watchNamespaces={Bad_NS}'

  expect "default: no --insecure-registry flag" bash -c "! grep -q -- '--insecure-registry' '$out/default.yaml'"
  expect "insecureRegistries: one --insecure-registry flag each" bash -c "
    '$helm' template sb '$chart' --set 'insecureRegistries={10.88.0.1:5000,registry.internal}' |
      grep -c -- '- --insecure-registry=' | grep -qx 2"
  reject "schema: insecureRegistries with a URL" "$helm" template sb "$chart" --set 'insecureRegistries={http://x}'

  # What the chart refuses.
  reject "schema: an unknown value" "$helm" template sb "$chart" --set nosuchvalue=1
  reject "schema: logFormat=xml" "$helm" template sb "$chart" --set logFormat=xml
  reject "schema: an empty Kaniko tag" "$helm" template sb "$chart" --set kanikoImage.tag=
  reject "schema: watchNamespace=Bad_NS" "$helm" template sb "$chart" --set watchNamespace=Bad_NS
  reject "kubeVersion: Kubernetes 1.29" "$helm" template sb "$chart" --kube-version 1.29.0
  rm -rf "$out"
  return "$helm_failed"
}

step_hadolint() {
  local hadolint
  hadolint=$(tool hadolint) || return 1
  "$hadolint" Dockerfile && echo "Dockerfile: hadolint clean"
}

cargo_env() {
  if [[ -z ${CARGO_TARGET_DIR:-} ]]; then
    CARGO_TARGET_DIR=$SOURCEBUILD_CACHE/cargo-target-$(rustc --version | cut -d' ' -f2)
    export CARGO_TARGET_DIR
  fi
}
# The real node (docs/real-node.md): a cluster of its own (run directory cluster-test) with the
# operator installed from the chart, the smoke Pods, then tests/node.rs run inside it (built
# outside first: building needs the package registry, the cluster has no way out), then down.
step_node() {
  local rc=0 bin
  cargo_env
  bin=$(node_test_binary) || return 1
  export SOURCEBUILD_CLUSTER_DIR=$SOURCEBUILD_CACHE/cluster-test
  if SOURCEBUILD_CLUSTER_WAIT=600 scripts/cluster.sh up; then
    scripts/cluster.sh smoke || rc=1
    scripts/cluster.sh smoke kaniko || rc=1
    scripts/cluster.sh exec bash scripts/cluster/demo.sh || rc=1
    # One test at a time: they share the node, and the fault test stops its kubelet.
    scripts/cluster.sh exec "$bin" --test-threads=1 || rc=1
  else
    rc=1
  fi
  scripts/cluster.sh down || rc=1
  unset SOURCEBUILD_CLUSTER_DIR
  return "$rc"
}

# Builds tests/node.rs (not part of a plain `cargo test`) and prints its executable.
node_test_binary() {
  cargo test --locked --test node --no-run --message-format=json |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "node" and m.get("executable"):
        print(m["executable"])'
}
# Rust, and our own Go programs in tools/ (a main package beside a tool's go.mod).
step_fmt() {
  local ok=0 unformatted
  cargo fmt --all -- --check || ok=1
  unformatted=$(gofmt -l "$repo"/tools/*/*.go) || ok=1
  [[ -z $unformatted ]] || { echo "gofmt would change: $unformatted" >&2; ok=1; }
  return "$ok"
}
# --all-targets leaves out tests/node.rs (test = false): named on its own.
step_clippy() { cargo_env && cargo clippy --all-targets --test node --locked -- -D warnings; }
step_cargo-test() { cargo_env && cargo test --all-targets --locked; }
# Every fuzz target for a bounded time from an empty corpus; a crash fails the step. The
# sanitizer build lives in the cache (about 15 minutes the first time on 2 cores).
step_fuzz() { scripts/fuzz.sh "${FUZZ_SECONDS:-20}"; }

# --- runner ------------------------------------------------------------------------------

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${all_steps[@]}")
failed=()
for s in "${steps[@]}"; do
  if ! declare -F "step_$s" >/dev/null; then
    echo "test.sh: unknown step '$s' (steps: ${all_steps[*]})" >&2
    exit 2
  fi
done
total_start=$SECONDS
for s in "${steps[@]}"; do
  echo "=== $s"
  start=$SECONDS
  if "step_$s"; then
    echo "=== $s: ok ($((SECONDS - start))s)"
  else
    echo "=== $s: FAILED ($((SECONDS - start))s)"
    failed+=("$s")
  fi
done
echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test.sh: FAILED steps: ${failed[*]} (of ${steps[*]}; $((SECONDS - total_start))s)"
  exit 1
fi
echo "test.sh: all steps ok: ${steps[*]} ($((SECONDS - total_start))s)"
