#!/usr/bin/env bash
# The test cluster's certificates and kubeconfigs, made with openssl (Debian's) into DIR:
#
#   scripts/cluster/pki.sh DIR NODE NODE_IP BRIDGE_IP API_URL
#
# One throwaway CA (ca.crt/ca.key) signs everything: the API server's serving cert, the
# kubelet's serving cert (the node name as a DNS SAN: the API server reaches the kubelet by the
# node name for logs/exec), and the client certs of the admin (system:masters), the
# controller-manager, the scheduler, kube-proxy, the kubelet (system:node:NODE in
# system:nodes) and the API server's kubelet client. sa.key/sa.pub sign ServiceAccount tokens.
# A kubeconfig per client: DIR/<name>.kubeconfig.
set -euo pipefail

dir=${1:?usage: pki.sh DIR NODE NODE_IP BRIDGE_IP API_URL}
node=${2:?} node_ip=${3:?} bridge_ip=${4:?} api_url=${5:?}
mkdir -p "$dir"
cd "$dir"
days=30

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
  -out ca.crt -days "$days" -subj "/CN=sourcebuild-cluster-ca" 2>/dev/null

# cert NAME SUBJECT EXTENSIONS: an EC key and a certificate signed by the CA.
cert() {
  local name=$1 subject=$2 ext=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" \
    -out "$name.csr" -subj "$subject" 2>/dev/null
  printf '%s\n' "$ext" >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
client='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
server() {
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$1"
}

cert apiserver "/CN=kube-apiserver" "$(server "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1,IP:$bridge_ip,IP:$node_ip")"
cert kubelet-serving "/CN=$node" "$(server "DNS:$node,DNS:localhost,IP:127.0.0.1,IP:$node_ip")"
cert admin "/O=system:masters/CN=sourcebuild-admin" "$client"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
cert controller-manager "/CN=system:kube-controller-manager" "$client"
cert scheduler "/CN=system:kube-scheduler" "$client"
cert kube-proxy "/CN=system:kube-proxy" "$client"
cert kubelet "/O=system:nodes/CN=system:node:$node" "$client"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key

kubeconfig() {
  local name=$1
  cat >"$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sourcebuild
  cluster:
    server: $api_url
    certificate-authority: $dir/ca.crt
users:
- name: $name
  user:
    client-certificate: $dir/$name.crt
    client-key: $dir/$name.key
contexts:
- name: sourcebuild
  context: {cluster: sourcebuild, user: $name}
current-context: sourcebuild
EOF
}
for name in admin controller-manager scheduler kube-proxy kubelet; do kubeconfig "$name"; done
