"""How a net's layers group: by the block calls and loop iterations of the .arch file that made
them (`Layer.call_path`), or, for layers written outside any (all of an imported prototxt's), by
their names. `archc summary` totals the groups and `archc graph` draws them as clusters.

The groups form a tree under the net:
- each distinct call path is a group inside the group of its parent path: a block call holds the
  layers its body emitted, a loop iteration the layers of that pass through the loop body;
- a loop iteration that only calls one block is that block call (`for b in 0..n { unit(b) }` is
  n groups, not n loops of one group each);
- a block call that makes the whole net (a family file whose body is one library block) is the
  net: its groups are the net's;
- the layers outside every call path group by name, as `block_of_name` cuts them: an in-place
  layer goes with the layer that wrote its blob (`bn2a_branch1`, `scale2a_branch1` and
  `res2a_branch1_relu` with `res2a_branch1`); otherwise a name is split at `_` and the group is its
  leading tokens, up to and including the first token that is a letter-led word with a digit
  (`res2a`, `resx3`, `a1`, `stem2`, `dense12`), stopping before a token that starts with a digit
  (`3x3`, `1x7`, `2`) and passing over version tags (`v2`): `inception_resnet_v2_a1_1x1` ->
  `inception_resnet_v2_a1`, `reduction_a_3x3_2` -> `reduction_a`, `conv1_3x3_s2` -> `conv1`; a
  name that none of these rules cuts (`reduction_a_pool`, `pool_ave`) joins the longest group so
  found that prefixes it (`reduction_a`), or else is a group of its own.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from archc.ir import BLOCK_CALL, LOOP_ITERATION, CallFrame, Net

NET = "net"
NAME_PREFIX = "names"   # a group of layers outside any call path, by their names

_NUMBERED_WORD = re.compile(r"[A-Za-z]+\d\w*")
_VERSION_TAG = re.compile(r"v\d+")


@dataclass
class Group:
    """Layers that belong together, and the groups nested in them, in execution order."""

    kind: str                    # NET, BLOCK_CALL, LOOP_ITERATION or NAME_PREFIX
    name: str                    # what tables and pictures call it (see `_name_of`)
    frame: CallFrame | None      # the block call or loop iteration; None for the others
    members: list[Group | int] = field(default_factory=list)  # sub-groups and layer indices

    @property
    def groups(self) -> list[Group]:
        return [member for member in self.members if isinstance(member, Group)]

    def layer_indices(self) -> list[int]:
        """Every layer in the group or nested in it, in execution order."""
        found = []
        for member in self.members:
            found.extend(member.layer_indices() if isinstance(member, Group) else [member])
        return sorted(found)

    @property
    def call(self) -> str:
        """The block call as written (`bottleneck(n=1, stride=2)`), less the argument that is the
        group's name (`conv_bn(c=64, k=7)` for conv_bn("conv1", 64, 7), named `conv1`); empty
        where the call is the name or the group is no block call."""
        if self.kind != BLOCK_CALL or self.frame.text == self.name:
            return ""
        values = ", ".join(f"{name}={value}" for name, value in self.frame.values
                           if value != f'"{self.name}"')
        return f"{self.frame.name}({values})"


def block_of_name(name: str) -> str:
    """The name-prefix group of a layer name (see the module docstring)."""
    tokens = name.split("_")
    for index, token in enumerate(tokens):
        if token[:1].isdigit():
            return "_".join(tokens[:index]) or name
        if _NUMBERED_WORD.fullmatch(token) and not _VERSION_TAG.fullmatch(token):
            return "_".join(tokens[:index + 1])
    return name


def group_net(net: Net) -> Group:
    """The tree of groups of `net` (see the module docstring); its root is the net."""
    root = Group(NET, net.name or NET, None)
    by_path: dict[tuple[CallFrame, ...], Group] = {(): root}
    loose: list[int] = []  # layers outside every call path
    for index, layer in enumerate(net.layers):
        path = layer.call_path
        for depth in range(1, len(path) + 1):
            if path[:depth] not in by_path:
                group = Group(path[depth - 1].kind, "", path[depth - 1])
                by_path[path[:depth - 1]].members.append(group)
                by_path[path[:depth]] = group
        if path:
            by_path[path].members.append(index)
        else:
            loose.append(index)
            root.members.append(index)
    while len(root.members) == 1 and isinstance(root.members[0], Group) \
            and root.members[0].kind == BLOCK_CALL:
        root.members = root.members[0].members  # the call that makes the whole net is the net
        loose = [member for member in root.members if isinstance(member, int)]
    _group_by_names(net, root, loose)
    _collapse_single_calls(root)
    _name_groups(net, root)
    return root


def _group_by_names(net: Net, root: Group, loose: list[int]) -> None:
    """Replace the root's loose layers by name-prefix groups, each where its first layer was."""
    block_of = _name_blocks([net.layers[index].name for index in loose])
    group_of_blob: dict[str, Group] = {}
    groups: dict[str, Group] = {}
    members: list[Group | int] = []
    for member in root.members:
        if isinstance(member, Group):
            members.append(member)
            continue
        layer = net.layers[member]
        group = group_of_blob.get(layer.bottoms[0]) if layer.in_place else None
        if group is None:
            name = block_of[layer.name]
            group = groups.get(name)
            if group is None:
                group = groups[name] = Group(NAME_PREFIX, name, None)
                members.append(group)
        group.members.append(member)
        for top in layer.tops:
            group_of_blob[top] = group
    root.members = members


def _name_blocks(names: list[str]) -> dict[str, str]:
    """Each name's group: `block_of_name`, or for an uncut name the longest cut group prefixing it."""
    cut = {name: block_of_name(name) for name in names}
    known = sorted({block for name, block in cut.items() if block != name}, key=len, reverse=True)
    blocks = {}
    for name, block in cut.items():
        if block == name:
            block = next((prefix for prefix in known if name.startswith(prefix + "_")), name)
        blocks[name] = block
    return blocks


def _collapse_single_calls(group: Group) -> None:
    """A loop iteration whose only member is one group stands for that group."""
    for position, member in enumerate(group.members):
        if isinstance(member, Group):
            _collapse_single_calls(member)
            if member.kind == LOOP_ITERATION and len(member.members) == 1 \
                    and isinstance(member.members[0], Group):
                group.members[position] = member.members[0]


def _name_groups(net: Net, group: Group) -> None:
    """Name each call group: a block call by the name its layers share (`resx1` for `resx1_conv1`,
    `resx1_elewise`, ...), else by the call itself (`stem()`); a loop iteration by its values."""
    for member in group.groups:
        if member.kind == BLOCK_CALL:
            names = [net.layers[index].name for index in member.layer_indices()]
            member.name = shared_name(names) or member.frame.text
        elif member.kind == LOOP_ITERATION:
            member.name = member.frame.text
        _name_groups(net, member)


def shared_name(names: list[str]) -> str:
    """The longest prefix that is each name or is followed in it by `_`; empty if there is none."""
    candidate = os.path.commonprefix(names)
    while candidate and not all(name == candidate or name.startswith(candidate + "_")
                                for name in names):
        candidate = candidate[:candidate.rfind("_")] if "_" in candidate else ""
    return candidate
