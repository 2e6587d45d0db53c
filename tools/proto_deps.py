"""Lay out the .proto files our contract imports from googleapis-common-protos, as symlinks.

protoc and buf need `google/longrunning/operations.proto` and what it imports (google/api/...,
google/rpc/status.proto) under their import names. googleapis-common-protos ships them inside
the venv's site-packages (the long-running one as `operations_proto.proto`, registered as
`google/longrunning/operations.proto`), so nothing is vendored into the repository: this makes
an include directory of symlinks into the installed package, following imports from our own
.proto files. The well-known google/protobuf/* types come with protoc (grpcio-tools) and buf.

    python -m tools.proto_deps PROTO_DIR OUT_DIR
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

# Import name → file name in the package, where the two differ.
_RENAMED = {"google/longrunning/operations.proto": "google/longrunning/operations_proto.proto"}
_BUILT_IN = "google/protobuf/"  # protoc's and buf's own
_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.MULTILINE)


def _site_root() -> Path:
    # google.api is a regular package of googleapis-common-protos, in site-packages/google/api.
    spec = importlib.util.find_spec("google.api")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("proto_deps: googleapis-common-protos is not installed")
    return Path(next(iter(spec.submodule_search_locations))).parent.parent


def _imports(path: Path) -> list[str]:
    return _IMPORT.findall(path.read_text(encoding="utf-8"))


def lay_out(proto_dir: Path, out_dir: Path) -> list[str]:
    """Symlink every google/* import (transitively) of proto_dir's files into out_dir."""
    root = _site_root()
    pending = [name for own in sorted(proto_dir.rglob("*.proto")) for name in _imports(own)]
    done: set[str] = set()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    while pending:
        name = pending.pop()
        if name in done or name.startswith(_BUILT_IN) or (proto_dir / name).exists():
            continue
        source = root / _RENAMED.get(name, name)
        if not source.is_file():
            raise SystemExit(f"proto_deps: {name} is imported but not in {root}")
        link = out_dir / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source.resolve())
        done.add(name)
        pending.extend(_imports(source))
    return sorted(done)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    lay_out(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
