#!/usr/bin/env bash
# A Kaniko build on the real node, with the build container's security context of src/pod.rs:
# uid 0, capabilities drop ALL + CHOWN DAC_OVERRIDE FOWNER SETUID SETGID, no privilege
# escalation, seccomp RuntimeDefault, no ServiceAccount token. Run inside the cluster
# (scripts/cluster.sh smoke kaniko). It pushes the Kaniko executor image (images.sh kaniko), builds
# a two-line Dockerfile FROM the busybox test image, checks that the digest Kaniko wrote to its
# termination message is the one the registry serves, and runs the built image as a Pod.
set -euo pipefail
: "${SOURCEBUILD_CLUSTER_DIR:?run through scripts/cluster.sh smoke kaniko}"
run=$SOURCEBUILD_CLUSTER_DIR
reg=$SOURCEBUILD_CLUSTER_REGISTRY
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
crane=$("$repo/scripts/tools.sh" crane)
executor=$("$repo/scripts/tools.sh" kaniko)
version=$("$executor" version 2>/dev/null | tail -1 || true)
kaniko=$reg/sourcebuild/kaniko-executor:test
busybox=$reg/sourcebuild/busybox:1
bash "$repo/scripts/cluster/images.sh" kaniko "$run" "$crane" "$kaniko" "$executor" >>"$run/logs/images.log" 2>&1
bash "$repo/scripts/cluster/images.sh" busybox "$run" "$crane" "$busybox" >>"$run/logs/images.log" 2>&1
echo "kaniko executor image $kaniko (executor $version)"

ns=kaniko-$(date +%s)
out=$reg/$ns/app:1
kubectl create namespace "$ns" >/dev/null
# Pods are refused until the controller-manager has made the namespace's default ServiceAccount.
for _ in $(seq 1 300); do
  kubectl -n "$ns" get serviceaccount default >/dev/null 2>&1 && break
  sleep 0.2
done
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: context
data:
  Dockerfile: |
    FROM $busybox
    RUN echo built-by-kaniko > /built.txt && grep -E '^Cap(Eff|Bnd)' /proc/self/status
---
apiVersion: v1
kind: Pod
metadata:
  name: build
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: build
    image: $kaniko
    args:
    - --context=dir:///workspace
    - --dockerfile=/workspace/Dockerfile
    - --destination=$out
    - --digest-file=/dev/termination-log
    - --snapshot-mode=redo
    - --insecure-registry=$reg
    terminationMessagePolicy: FallbackToLogsOnError
    securityContext:
      runAsUser: 0
      runAsGroup: 0
      runAsNonRoot: false
      privileged: false
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: false
      capabilities:
        drop: [ALL]
        add: [CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID]
    volumeMounts:
    - {name: context, mountPath: /workspace}
  volumes:
  - name: context
    configMap: {name: context}
YAML
start=$SECONDS
phase=
while ((SECONDS - start < 300)); do
  phase=$(kubectl -n "$ns" get pod build -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
echo "pod build: $phase after $((SECONDS - start))s"
echo "--- kubectl logs (tail)"
kubectl -n "$ns" logs build | tail -8
[[ $phase == Succeeded ]] || exit 1
reported=$(kubectl -n "$ns" get pod build -o jsonpath='{.status.containerStatuses[0].state.terminated.message}')
served=$("$crane" digest --insecure "$out")
echo "digest in the termination message: $reported"
echo "digest the registry serves:        $served"
[[ $reported == "$served" ]] || { echo "digests differ"; exit 1; }

kubectl -n "$ns" run built --image="$out@$served" --restart=Never --command -- cat /built.txt >/dev/null
start=$SECONDS
while ((SECONDS - start < 60)); do
  phase=$(kubectl -n "$ns" get pod built -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 0.5
done
echo "pod built (the image Kaniko pushed): $phase, logs: $(kubectl -n "$ns" logs built)"
kubectl delete namespace "$ns" --wait=false >/dev/null
[[ $phase == Succeeded ]]
