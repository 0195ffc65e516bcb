# Build recipe for etcd, sourced by scripts/tools.sh. go.etcd.io/etcd/server/v3 is etcd's
# main package (main.go calls etcdmain.Main); `go install` of it fails (its go.mod has replace
# lines), a tools module builds it. Kubernetes 1.34 wants etcd >= 3.5.13 / 3.6 (watch progress
# requests); Debian's etcd-server (3.4.23) is too old.
TOOL_MODULE=go.etcd.io/etcd/server/v3
TOOL_PACKAGE=go.etcd.io/etcd/server/v3
TOOL_LDFLAGS="-s -w"
