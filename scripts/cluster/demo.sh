#!/usr/bin/env bash
# The demo inside the local cluster (scripts/demo.sh runs it; scripts/test.sh node runs it too):
# applies examples/configmap-app.yaml with its output pointed at the cluster's registry, shows
# `kubectl get sourcebuilds -w` until the build ends, then runs the built image as a Deployment
# with a Service on the node and prints the app's answer through the Service's ClusterIP.
# Exits non-zero when any of it fails or the answer is not the app's.
set -euo pipefail
: "${SOURCEBUILD_CLUSTER_DIR:?run through scripts/demo.sh or scripts/cluster.sh exec}"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ns=demo
reg=$SOURCEBUILD_CLUSTER_REGISTRY

say() { printf '\n==> %s\n' "$*" >&2; }

kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$ns" >/dev/null
until kubectl get serviceaccount default -n "$ns" >/dev/null 2>&1; do sleep 0.5; done

say "kubectl apply -f examples/configmap-app.yaml (output: $reg/team/hello:1.0, the cluster's registry, which needs no push Secret)"
sed -e "s|registry.example.com/team/hello:1.0|$reg/team/hello:1.0|" -e '/pushSecretRef:/,+1d' \
  "$repo/examples/configmap-app.yaml" | kubectl apply -n "$ns" -f -

say "kubectl get sourcebuilds -w (until the build ends)"
kubectl get sourcebuilds -n "$ns" -w &
watch=$!
phase=''
for ((i = 0; i < 600; i++)); do
  phase=$(kubectl get sourcebuild hello-configmap -n "$ns" -o jsonpath='{.status.phase}')
  [[ $phase == Succeeded || $phase == Failed ]] && break
  sleep 1
done
sleep 1
kill "$watch" 2>/dev/null || true
wait "$watch" 2>/dev/null || true
if [[ $phase != Succeeded ]]; then
  say "the build did not succeed (phase '${phase:-none}'):"
  kubectl describe sourcebuild hello-configmap -n "$ns" >&2
  exit 1
fi

say "kubectl logs hello-configmap-build-1 -c build (the last lines: Kaniko's build and push)"
kubectl logs hello-configmap-build-1 -n "$ns" -c build | tail -6

image=$(kubectl get sourcebuild hello-configmap -n "$ns" -o jsonpath='{.status.latestImage}')
say "running $image as Deployment hello, with Service hello (port 80)"
kubectl create deployment hello -n "$ns" --image="$image" --port=8080
kubectl expose deployment hello -n "$ns" --port=80 --target-port=8080
kubectl rollout status deployment/hello -n "$ns" --timeout=3m
ip=$(kubectl get service hello -n "$ns" -o jsonpath='{.spec.clusterIP}')

say "curl http://$ip/ (the Service's ClusterIP, through kube-proxy)"
answer=''
for ((i = 0; i < 30; i++)); do
  answer=$(curl -sS --max-time 5 "http://$ip/" 2>/dev/null) && break
  sleep 1
done
echo "$answer"
[[ $answer == "hello from a SourceBuild" ]] || { say "unexpected answer: '$answer'"; exit 1; }

say "the image, by digest: $image (crane digest --insecure $reg/team/hello:1.0)"
