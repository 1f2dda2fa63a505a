"""API contract: every field, RPC and enum value in protos/ carries a comment."""

import pathlib
import re

PROTOS = pathlib.Path(__file__).resolve().parent.parent / "protos"
DECLARATION = re.compile(r"^\s*(rpc |repeated |map<|[A-Za-z_][\w.]* \w+ = \d+;|[A-Z_0-9]+ = \d+;)")


def test_every_declaration_in_our_protos_is_commented():
    undocumented = []
    for path in sorted(PROTOS.rglob("*.proto")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if DECLARATION.match(line) and not lines[number - 1].strip().startswith("//"):
                undocumented.append(f"{path.name}:{number + 1}: {line.strip()}")
    assert not undocumented, "\n".join(undocumented)
