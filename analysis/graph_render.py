"""`analysis.graph` drawings as files: SVG and PNG through Graphviz's `dot`, the DOT source itself,
and one self-contained HTML page in which a click opens or closes a block.

The page holds one drawing per view: the net as first shown (every block closed), and for each
block the net with that block and the blocks around it open, each laid out by `dot` in one run.
A closed box links to `#g<N>`, the view where it is open; an open block's frame links back to the
view where it is closed; the page shows the view its address names, so Back and Forward work too.
The drawings are gzip-compressed inside the page (DenseNet-121's are 20 MB as SVG text, 3 MB
compressed) and unpacked by the browser's own DecompressionStream: no server and no network.
"""
from __future__ import annotations

import base64
import gzip
import html
import json
import re
import shutil
import string
import subprocess
from pathlib import Path

from archc.analysis.graph import DEFAULT_VIEW, NetGraph
from archc.errors import ArchError

FORMATS = (".svg", ".png", ".html", ".dot")
INSTALL_GRAPHVIZ = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
                    "install graphviz), or write the DOT source with -o NAME.dot")
_SVG = re.compile(r"<svg\b.*?</svg>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->\n?", re.DOTALL)


def write_drawing(graph: NetGraph, path: Path, open_groups: set[int], stages: str) -> None:
    """The net drawn into `path`, in the format its extension names (see FORMATS)."""
    suffix = path.suffix.lower()
    if suffix == ".html":
        data = html_page(graph, stages).encode("utf-8")
    elif suffix == ".dot":
        data = graph.dot(open_groups, stages).encode("utf-8")
    else:
        data = run_dot(graph.dot(open_groups, stages), suffix[1:])
    try:
        path.write_bytes(data)
    except OSError as error:
        raise ArchError(f"cannot write {path}: {error.strerror or error}") from None


def run_dot(source: str, output_format: str) -> bytes:
    """Graphviz's `dot` laying out `source` (one graph or several) into `output_format`."""
    dot = shutil.which("dot")
    if dot is None:
        raise ArchError(f"drawing a graph needs Graphviz's `dot`, which is not on PATH: "
                        f"{INSTALL_GRAPHVIZ}")
    result = subprocess.run([dot, f"-T{output_format}"], input=source.encode("utf-8"),
                            capture_output=True)
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ArchError(f"Graphviz's dot failed: {detail[-1] if detail else 'no message'}")
    return result.stdout


def html_page(graph: NetGraph, stages: str) -> str:
    """The page: every view's SVG, compressed, and the script that shows the view asked for."""
    views = {DEFAULT_VIEW: set()}
    for number in graph.closable():
        views[graph.view_of(number)] = graph.with_ancestors([number])
    source = "".join(graph.dot(open_groups, stages, links=True, prefix=f"{view}_", titled=False)
                     for view, open_groups in views.items())
    drawings = _SVG.findall(run_dot(source, "svg").decode("utf-8"))
    if len(drawings) != len(views):
        raise ArchError(f"Graphviz's dot drew {len(drawings)} of the {len(views)} views")
    names = {graph.view_of(number): graph.facts[number].group.name for number in graph.closable()}
    payload = {"views": {view: _COMMENT.sub("", svg) for view, svg in zip(views, drawings)},
               "names": names,
               "parents": {graph.view_of(number): graph.closing_view(number)
                           for number in graph.closable()}}
    packed = base64.b64encode(gzip.compress(json.dumps(payload).encode("utf-8"), mtime=0))
    return _PAGE.substitute(TITLE=html.escape(graph.title), DEFAULT=DEFAULT_VIEW,
                            DATA=packed.decode("ascii"))


_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>$TITLE</title>
<style>
  body { margin: 0; font: 14px Helvetica, Arial, sans-serif; color: #222; }
  header { position: sticky; top: 0; background: #fafafa; border-bottom: 1px solid #ddd;
           padding: 8px 14px; z-index: 1; }
  header h1 { font-size: 16px; margin: 0 0 4px; }
  #trail a { color: #2b5d9b; text-decoration: none; }
  #trail a:hover { text-decoration: underline; }
  .hint { color: #666; font-size: 12px; }
  main { padding: 10px; }
  main svg a { cursor: pointer; }
  main svg g.node > a:hover polygon, main svg g.node > a:hover path {
    stroke: #d9822b; stroke-width: 2.5; }
</style>
</head>
<body>
<header>
  <h1>$TITLE</h1>
  <div id="trail"></div>
  <div class="hint">Click a block to open it; click an open block's frame or name to close it.
    Back and Forward step through what you opened.</div>
</header>
<main id="drawing">unpacking the drawing...</main>
<script>
"use strict";
const packed = "$DATA";
let data = null;

async function unpack() {
  const bytes = Uint8Array.from(atob(packed), c => c.charCodeAt(0));
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

function show() {
  const wanted = decodeURIComponent(location.hash.slice(1));
  const view = wanted in data.views ? wanted : "$DEFAULT";
  document.getElementById("drawing").innerHTML = data.views[view];
  document.body.dataset.view = view;
  const trail = [];
  for (let step = view; step !== "$DEFAULT"; step = data.parents[step]) {
    trail.unshift(step);
  }
  const links = [["$DEFAULT", "net"], ...trail.map(step => [step, data.names[step]])];
  const element = document.getElementById("trail");
  element.replaceChildren();
  links.forEach(([step, name], index) => {
    if (index) element.append(" \\u203a ");
    const link = document.createElement("a");
    link.href = "#" + step;
    link.textContent = name;
    element.append(link);
  });
}

if (typeof DecompressionStream === "undefined") {
  document.getElementById("drawing").textContent =
    "This browser cannot unpack the drawing: it needs DecompressionStream " +
    "(Chrome 80, Firefox 113, Safari 16.4 or later).";
} else {
  unpack().then(unpacked => {
    data = unpacked;
    window.addEventListener("hashchange", show);
    show();
  });
}
</script>
</body>
</html>
""")
