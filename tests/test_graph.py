"""`archc graph`: the net drawn with its .arch structure (blocks closed or open, stages, shapes on
edges, merges), by name prefix for a prototxt; SVG, PNG and a clickable HTML page, the page tested
in a real headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from archc.analysis.graph import NetGraph
from archc.cli.cmd_graph import main as graph_main
from archc.codegen.parse import import_net
from archc.ir import infer_shapes
from browser import Browser, find_browser
from conftest import REPO
from golden import generate

RESNEXT = str(REPO / "archs" / "resnext.arch")
needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None,
                                    reason="Graphviz's dot is not installed (`make test` installs it)")


def graph_of(arch: str, **params) -> NetGraph:
    net, _ = generate(arch, **params)
    return NetGraph(infer_shapes(net), arch)


def nodes(dot: str) -> dict[str, str]:
    """Node id -> its statement."""
    return {match.group(1): match.group(0)
            for match in re.finditer(r'^\s*"([^"]+)" \[(?:id|label).*$', dot, re.MULTILINE)}


def test_blocks_are_closed_boxes_and_stages_are_open_frames():
    graph = graph_of("resnext.arch", depth=50)
    dot = graph.dot(set())
    resx4 = graph.facts[graph.named("resx4")[0]]
    box = nodes(dot)[f"g{resx4.number}"]
    assert "<b>resx4</b>" in box and "bottleneck(n=4, inner=256, out=512, stride=2)" in box
    assert "&#8594; 512x28x28" in box and "352.26K params" in box and "429.51M MACs" in box
    assert dot.count("subgraph") == 4  # the four stages, no block open
    assert "for stage=1, count=4" in dot
    # stages side by side: their first boxes share a rank
    (same_rank,) = re.findall(r"\{ rank=same; (.*) \}", dot)
    assert same_rank.count(";") == 4
    assert "rank=same" not in graph.dot(set(), stages="stacked")
    # every edge between boxes is labelled with the blob's shape, once per blob
    edges = re.findall(r'^\s*"([^"]+)" -> "([^"]+)" \[.*label=" ([^"]+)"', dot, re.MULTILINE)
    assert ("input:data", f"g{graph.named('conv1')[0]}", "3x224x224") in edges
    assert sum(1 for _, target, _ in edges if target == f"g{resx4.number}") == 1


def test_an_open_block_shows_its_layers_merge_and_nested_blocks():
    graph = graph_of("resnext.arch", depth=50)
    resx4 = graph.named("resx4")[0]
    dot = graph.dot(graph.with_ancestors([resx4]))
    assert f'subgraph "cluster_g{resx4}"' in dot
    drawn = nodes(dot)
    merge = next(statement for statement in drawn.values() if "shape=\"circle\"" in statement)
    assert "<b>+</b>" in merge and "resx4_elewise" in merge
    # its conv_bn calls stay closed until opened
    conv2 = graph.named("resx4_conv2")[0]
    assert "conv_bn(c=256, k=3, stride=2, pad=1, group=32)" in drawn[f"g{conv2}"]
    inner = graph.dot(graph.with_ancestors([conv2]))
    layer_labels = " ".join(nodes(inner).values())
    assert "Convolution 3x3 /2 g32 &#8594; 256" in layer_labels and "resx4_conv2_scale" in layer_labels
    # in-place layers: no repeated shape on the edges inside the chain
    assert re.search(r'-> "L\d+" \[id="e\d+", tooltip="resx4_conv2: 256x28x28"\]', inner)


def test_inception_concat_and_name_groups_of_a_prototxt():
    graph = graph_of("inception_v4.arch")
    opened = graph.dot(graph.with_ancestors(graph.named("inception_c1")))
    assert 'shape="invtrapezium"' in opened and "<b>concat</b>" in opened
    assert [graph.facts[n].group.name for n in graph.closable()][:2] == ["stem()", "conv1_3x3_s2"]
    _, text = generate("resnet_v1.arch", depth=50)
    imported = NetGraph(infer_shapes(import_net(text, "<generated>")), "resnet50.prototxt")
    names = [imported.facts[number].group.name for number in imported.closable()]
    assert names[:4] == ["conv1", "res2a", "res2b", "res2c"]
    assert "subgraph" not in imported.dot(set())  # a prototxt has no stages
    assert all(imported.facts[number].group.call == "" for number in imported.closable())


def test_closing_a_block_returns_to_the_view_of_the_block_around_it():
    graph = graph_of("resnext.arch", depth=50)
    resx4, conv2 = graph.named("resx4")[0], graph.named("resx4_conv2")[0]
    assert graph.closing_view(resx4) == "net"  # the stage around it is no block
    assert graph.closing_view(conv2) == f"g{resx4}"
    linked = graph.dot(graph.with_ancestors([conv2]), links=True, prefix="v-")
    closing = {re.search(r'tooltip="close (\w+)"', line)[1]: re.search(r'URL="([^"]+)"', line)[1]
               for line in linked.splitlines() if 'tooltip="close ' in line}
    assert closing == {"resx4": "#net", "resx4_conv2": f"#g{resx4}"}
    assert 'URL="#g' in nodes(linked)[f"g{graph.named('resx5')[0]}"]


@needs_graphviz
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".dot", b"digraph")])
def test_cli_writes_the_format_the_extension_names(tmp_path, capsys, suffix, magic):
    output = tmp_path / f"net{suffix}"
    assert graph_main([RESNEXT, "--depth", "50", "--open", "resx4,resx16", "-o", str(output)]) == 0
    assert output.read_bytes().startswith(magic)
    assert capsys.readouterr().err == f"wrote {output}\n"


def test_cli_mistakes_are_explained(tmp_path, capsys, monkeypatch):
    assert graph_main([RESNEXT, "-o", str(tmp_path / "net.pdf")]) == 2
    assert "use one of .svg, .png, .html, .dot" in capsys.readouterr().err
    assert graph_main([RESNEXT, "--open", "resx44"]) == 2
    assert "--open resx44: the net has no block of that name; did you mean resx4?" in \
        capsys.readouterr().err
    assert graph_main([RESNEXT, "--open", "resx4", "-o", str(tmp_path / "net.html")]) == 2
    assert "the .html page opens blocks on a click: drop --open" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot
    assert graph_main([RESNEXT, "-o", str(tmp_path / "net.svg")]) == 2
    assert "apt-get install graphviz" in capsys.readouterr().err
    assert graph_main([RESNEXT, "-o", str(tmp_path / "net.dot")]) == 0  # needs no Graphviz
    assert graph_main([RESNEXT, "--stages", "stacked"]) == 0
    assert capsys.readouterr().out.startswith('digraph "net" {')


@needs_graphviz
def test_the_svg_is_valid_and_every_open_group_is_a_cluster(tmp_path):
    output = tmp_path / "net.svg"
    assert graph_main([RESNEXT, "--open", "all", "-o", str(output)]) == 0
    svg = output.read_text()
    graph = graph_of("resnext.arch")
    clusters = set(re.findall(r'<g id="cluster_g(\d+)" class="cluster">', svg))
    # all but the groups of one layer (pool1, ...), drawn as that layer
    assert clusters == {str(number) for number, facts in graph.facts.items() if len(facts.layers) > 1}
    result = subprocess.run(["dot", "-Tcanon"], input=graph.dot(set()), capture_output=True,
                            text=True)
    assert result.returncode == 0 and not result.stderr


@needs_graphviz
@pytest.mark.skipif(find_browser() is None,
                    reason="no Chromium to test the page in (`make test` installs it)")
def test_the_html_page_opens_and_closes_a_block_on_a_click(tmp_path):
    page = tmp_path / "resnext50.html"
    assert graph_main([RESNEXT, "--depth", "50", "-o", str(page)]) == 0
    text = page.read_text()
    assert not re.search(r"<(link|img)\b|\bsrc=|https?://(?!www\.w3\.org)", text)  # self-contained
    resx4 = graph_of("resnext.arch", depth=50).named("resx4")[0]
    box = ("[...document.querySelectorAll('#drawing g.node')]"
           ".find(node => node.querySelector('text').textContent === 'resx4')")
    with Browser(find_browser()) as browser:
        browser.open(page.as_uri())
        browser.wait_for("document.body.dataset.view === 'net'")
        browser.click(*browser.evaluate(_centre_of(box)))
        assert browser.wait_for("document.body.dataset.view !== 'net' && location.hash") == f"#g{resx4}"
        opened = f"document.getElementById('g{resx4}_cluster_g{resx4}')"
        assert browser.evaluate(f"{opened}.querySelector('text').textContent") == "resx4"
        assert browser.evaluate("document.getElementById('trail').textContent") == "net \u203a resx4"
        labels = browser.evaluate("[...document.querySelectorAll('#drawing g.node text')]"
                                  ".map(text => text.textContent)")
        assert {"resx4_conv1", "resx4_elewise_relu", "+"} <= set(labels)
        (tmp_path / "resnext50-resx4.png").write_bytes(browser.screenshot())
        # a click on the open block's frame closes it
        # (its top left corner, below the page's header: the frame's label, no layer)
        frame = browser.evaluate(f"(() => {{ const element = {opened}; "
                                 f"window.scrollBy(0, element.getBoundingClientRect().top - 200); "
                                 f"const r = element.getBoundingClientRect(); "
                                 f"return [r.x + 8, r.y + 8]; }})()")
        browser.click(*frame)
        browser.wait_for("document.body.dataset.view === 'net'")
        assert browser.evaluate("location.hash") == "#net"
        assert browser.evaluate(f"{opened} === null")


def _centre_of(element: str) -> str:
    """JavaScript: scroll `element` into view and give its centre in the viewport."""
    return (f"(() => {{ const element = {element}; element.scrollIntoView({{block: 'center'}}); "
            f"const r = element.getBoundingClientRect(); return [r.x + r.width / 2, "
            f"r.y + r.height / 2]; }})()")
