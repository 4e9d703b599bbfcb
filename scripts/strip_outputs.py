"""Remove outputs and execution counts from notebooks (they are committed clean).

python scripts/strip_outputs.py notebooks/*.ipynb
"""

import json
import sys


def strip(path: str) -> bool:
    with open(path, encoding="utf-8") as fh:
        nb = json.load(fh)
    changed = False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                changed = True
            cell["outputs"] = []
            cell["execution_count"] = None
        md = cell.get("metadata", {})
        for key in ("execution", "collapsed", "scrolled"):
            if key in md:
                md.pop(key)
                changed = True
    nb.get("metadata", {}).pop("widgets", None)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(nb, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    return changed


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(("stripped " if strip(p) else "clean    ") + p)
