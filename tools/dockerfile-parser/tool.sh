# A Python interpreter with the `dockerfile` package (BuildKit's Dockerfile parser, the Go code
# compiled into a CPython extension), for tests/hostile_input.rs; sourced by scripts/tools.sh.
TOOL_MODULE=dockerfile
TOOL_BIN=python3
