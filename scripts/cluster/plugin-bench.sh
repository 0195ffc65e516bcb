#!/usr/bin/env bash
# Time to the digest of the example app (examples/configmap-app.yaml's app.py), five runs:
# `kubectl sourcebuild build DIR` for a new tree, the same again unchanged, and `kubectl apply`
# by hand of a SourceBuild of the same artifact, polled every 0.2 s until Succeeded.
# Inside the local cluster, each run in a namespace of its own:
#   scripts/cluster.sh exec scripts/cluster/plugin-bench.sh PATH/TO/kubectl-sourcebuild
set -euo pipefail
PLUGIN=$1
REG=$SOURCEBUILD_CLUSTER_REGISTRY
now() { date +%s.%N; }
for i in 1 2 3 4 5; do
  ns=plugin-bench-$i
  kubectl create namespace $ns >/dev/null
  dir=$(mktemp -d)/example-app
  mkdir -p $dir/.s2i
  cat > $dir/app.py <<'PY'
import http.server
import os


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {os.environ.get('GREETING_FROM', 'nowhere')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.HTTPServer(("0.0.0.0", 8080), Hello).serve_forever()
PY
  printf 'APP_FILE=app.py\nGREETING_FROM=run %s\n' $i > $dir/.s2i/environment
  t0=$(now); img=$($PLUGIN build $dir --image $REG/bench/app-$i:1 -n $ns --insecure-registry $REG --quiet 2>/dev/null); t1=$(now)
  img2=$($PLUGIN build $dir --image $REG/bench/app-$i:1 -n $ns --insecure-registry $REG --quiet 2>/dev/null); t2=$(now)
  [[ $img == "$img2" ]] || { echo "run $i: unchanged gave another image"; exit 1; }
  src=$(kubectl get sb example-app -n $ns -o jsonpath='{.spec.source.oci.image}')
  t3=$(now)
  kubectl apply -n $ns -f - >/dev/null <<YAML
apiVersion: sourcebuild.dev/v1alpha1
kind: SourceBuild
metadata: {name: by-hand}
spec:
  source: {oci: {image: "$src"}}
  output: {image: "$REG/bench/hand-$i:1"}
YAML
  until [[ $(kubectl get sb by-hand -n $ns -o jsonpath='{.status.phase}') == Succeeded ]]; do sleep 0.2; done
  kubectl get sb by-hand -n $ns -o jsonpath='{.status.digest}' >/dev/null
  t4=$(now)
  echo "run $i: plugin first $(echo "$t1 - $t0" | bc) s, unchanged $(echo "$t2 - $t1" | bc) s, by hand $(echo "$t4 - $t3" | bc) s"
done
