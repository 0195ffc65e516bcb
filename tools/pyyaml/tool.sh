# A Python interpreter with PyYAML, for the repo's small YAML checks; sourced by scripts/tools.sh.
TOOL_MODULE=PyYAML
TOOL_BIN=python3
