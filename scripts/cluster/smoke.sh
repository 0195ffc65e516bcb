#!/usr/bin/env bash
# A check that the node really runs Pods with the security settings a build Pod uses. Run inside
# the cluster (scripts/cluster.sh smoke). It pushes the busybox test image and runs one Pod:
# runAsUser/runAsGroup 65532, runAsNonRoot, readOnlyRootFilesystem, capabilities drop ALL,
# no privilege escalation, seccomp RuntimeDefault, no ServiceAccount token. The Pod prints what
# the kernel says about its process and tries a write to its root; it must end Succeeded, and
# `kubectl logs` must show that output.
set -euo pipefail
: "${SOURCEBUILD_CLUSTER_DIR:?run through scripts/cluster.sh smoke}"
run=$SOURCEBUILD_CLUSTER_DIR
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
crane=$("$repo/scripts/tools.sh" crane)
image=$SOURCEBUILD_CLUSTER_REGISTRY/sourcebuild/busybox:1
bash "$repo/scripts/cluster/images.sh" busybox "$run" "$crane" "$image" >>"$run/logs/images.log" 2>&1

ns=smoke-$(date +%s)
kubectl create namespace "$ns" >/dev/null
# Pods are refused until the controller-manager has made the namespace's default ServiceAccount.
for _ in $(seq 1 300); do
  kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.2
done
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: smoke
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsUser: 65532
    runAsGroup: 65532
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: smoke
    image: $image
    command:
    - /bin/sh
    - -c
    - |
      echo "id: \$(id)"
      grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status
      if touch /written 2>/dev/null; then echo "root filesystem: WRITABLE"; exit 1; fi
      echo "root filesystem: read-only"
      echo "routes: \$(cat /proc/net/route | tail -n +2 | awk '{print \$1, \$2}' | tr '\n' ';')"
      if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo "token: MOUNTED"; exit 1; fi
      echo "token: none"
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
    resources:
      limits: {memory: 64Mi, cpu: 200m}
YAML
start=$SECONDS
phase=
while ((SECONDS - start < 120)); do
  phase=$(kubectl -n "$ns" get pod smoke -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 0.5
done
echo "pod smoke: $phase after $((SECONDS - start))s on node $(kubectl -n "$ns" get pod smoke -o jsonpath='{.spec.nodeName}')"
echo "--- kubectl logs"
kubectl -n "$ns" logs smoke
kubectl delete namespace "$ns" --wait=false >/dev/null
[[ $phase == Succeeded ]]
