# Build recipe for flux, sourced by scripts/tools.sh: Flux's source-controller and
# kustomize-controller from their modules, for the Flux end-to-end test in tests/gitops.rs.
# v1.9.0 (Flux 2.9): the newest release whose dependencies the module proxy serves for this Go
# (v1.9.5 and later need github.com/fluxcd/pkg/artifact v0.18.3, v1.10 needs Go 1.27). go.sum was
# made with `go mod tidy -e`: tidy also wants the modules of the controllers' own tests
# (helmtestserver), which the build does not need.
TOOL_MODULE=github.com/fluxcd/source-controller
TOOL_PACKAGES="github.com/fluxcd/source-controller github.com/fluxcd/kustomize-controller"
TOOL_LDFLAGS="-s -w"
