#!/usr/bin/env python3
"""Parse many Dockerfiles with BuildKit's own parser, in one process.

    parse-dockerfiles.py CASES.json     (run with the dockerfile-parser tool's python)

CASES.json is a JSON array of Dockerfile texts. Prints a JSON array with one item per text:
{"ok": [instruction, ...]} or {"error": "message"}, where an instruction is
{"cmd", "json", "flags", "value", "start_line", "end_line", "heredocs"} exactly as the
`dockerfile` package (moby/buildkit frontend/dockerfile/parser, compiled) returns them: raw,
unevaluated words. tests/hostile_input.rs evaluates the quoting itself.
"""
import json
import sys

import dockerfile


def parse(text):
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as e:
        return {"error": str(e)}
    return {
        "ok": [
            {
                "cmd": c.cmd,
                "json": c.json,
                "flags": list(c.flags),
                "value": list(c.value),
                "start_line": c.start_line,
                "end_line": c.end_line,
                "heredocs": len(c.heredocs),
            }
            for c in commands
        ]
    }


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    json.dump([parse(text) for text in cases], sys.stdout)


if __name__ == "__main__":
    main()
