"""Parse tree -> IR: evaluate declarations, then run the net body to build layers with shapes.

Nothing here executes user text as Python: expressions are interpreted node by node, with
bounded integers, bounded lists and bounded call depth, so every input ends in a net or an
`ArchError` at a position inside the file. Files are read and imports found by dsl.loading,
string literals split by dsl.interpolation, and expression nodes evaluated by dsl.expressions,
which calls back only through its `Evaluator` protocol.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import lark

from archc.dsl import interpolation
from archc.dsl.expressions import HANDLERS as _EXPRESSIONS
from archc.dsl.expressions import (MAX_LIST, EvalError, condition, equal, range_of, value_size,
                                   written_float, written_int)
from archc.dsl.primitives import (PLACEMENT_PARAMS, PRIMITIVES, ArgumentError, Primitive,
                                  check_argument, ops_for_caffe_type)
from archc.dsl.values import BlockDef, Frame, Scope, Tensor, allowed_choice, brief, type_name
from archc.errors import ArchError, Span
from archc.ir.net import BLOCK_CALL, LOOP_ITERATION, MAX_BLOB, CallFrame, Layer, Net, ShapeTracker

if TYPE_CHECKING:
    from archc.ir.ops.fork import ForkTypes

# Limits that keep every input bounded in time and memory; each error names the limit
# (expressions have their own, in dsl.expressions).
MAX_LAYERS = 50_000
MAX_CALL_DEPTH = 64
MAX_CALL_NOTES = 5  # "called at" notes on an error, innermost first
# Statements a misspelt keyword was probably meant to be (an unknown name reads as an op).
STATEMENT_KEYWORDS = ("from", "input", "let", "for", "if")
MAX_NAME = 512
# How much of a block argument or loop value a layer's call path records (for summary and graph).
MAX_RECORDED_VALUE = 40
# Work budget of one elaboration: one step per statement and per expression node, plus the size
# of every value an expression yields. Loops whose bodies add no layers (`for i in 0..100000
# { for j in 0..100000 { let x = i } }`) would otherwise run for hours.
MAX_STEPS = 5_000_000


class ParamType(NamedTuple):
    """A parameter type: the type_name()s of the values it takes, and one such value in words."""

    values: tuple[str, ...]
    wording: str


# A float parameter takes integers too (as floats).
PARAM_TYPES = {"int": ParamType(("int",), "an int"), "float": ParamType(("int", "float"), "a float"),
               "str": ParamType(("string",), "a string"), "bool": ParamType(("bool",), "true or false")}


@dataclass
class ParamInfo:
    """A file parameter, as `archc FILE --help` lists it."""

    name: str
    type: str
    default: Any
    allowed: Any
    doc: str
    span: Span


@dataclass
class Module:
    """One evaluated .arch file: its top-level scope, parameters and (for a model) its net body."""

    path: str
    scope: Scope
    params: list[ParamInfo] = field(default_factory=list)
    net_body: lark.Tree | None = None
    types: ForkTypes = field(default_factory=dict)  # fork layer types declared or imported


class Libraries(Protocol):
    """Where declarations get the library an `import` names (dsl.loading.Loader)."""

    def load_library(self, target: str, importer: str, span: Span) -> Module:
        """The declared library file `target`, as imported by the file `importer`."""


def elaborate(module: Module, libraries: Libraries) -> Net:
    """Run the module's net body and return the finished IR net."""
    if module.net_body is None:
        raise ArchError("this file defines no `net { ... }`: it can be imported as a library, "
                        "not compiled", Span(module.path, 1, 1))
    return Elaborator(libraries).build_net(module)


# Expressions that hand back a value built (and charged for) earlier: no new work to count, but
# what they hand over can be compared or summed, so a reference is charged the value's size,
# remembered when it was built (for values of at least _REMEMBERED elements; smaller ones pay
# their length).
_REFERENCES = frozenset({"name_ref", "index", "attribute", "input_ref", "current_ref"})
_REMEMBERED = 64


class Elaborator:
    """Declares one file, or runs a model's net body; the `Evaluator` its expressions use."""

    def __init__(self, libraries: Libraries):
        self.libraries = libraries
        self.tracker = ShapeTracker({})
        self.inputs: dict[str, tuple[int, ...]] = {}
        self.input_span: Span | None = None
        self.auto_names: dict[str, int] = {}
        self.string_parts: dict[tuple[str, int, int], list[str | lark.Tree]] = {}
        # The file whose nodes are being evaluated: parse trees carry no path, and a block
        # defined in an imported library runs with that library's path.
        self.path = ""
        self.steps = 0
        self.sizes: dict[int, tuple[Any, int]] = {}  # id -> (large value, its value_size)
        # The top-level statement or declaration being run (with its file): where a RecursionError
        # is reported, the same place however deep Python's stack already was.
        self.running: tuple[str, Any] = ("", None)

    # ----- declarations -------------------------------------------------------------------

    def declare(self, tree: lark.Tree, path: str, overrides: dict[str, str], top_level: bool) -> Module:
        self.path = path
        module = Module(path, Scope())
        for item in tree.children:
            if not isinstance(item, lark.Tree):
                continue
            self.running = (path, item)
            kind = item.data
            if kind == "import_decl":
                self._import(item, module)
            elif kind == "param_decl":
                if not top_level:
                    raise self.error("an imported library cannot declare parameters: pass values "
                                     "to its blocks as arguments", item)
                self._param(item, module, overrides)
            elif kind == "let_stmt":
                self._let(item, module.scope, None)
            elif kind == "block_def":
                self._block(item, module)
            elif kind == "layer_decl":
                # Loaded here: most models declare no fork types, and the fork machinery costs a
                # compile about 1 ms to import.
                from archc.dsl.forks import declare_layer
                op, primitive = declare_layer(self, item, module.scope)
                if primitive.name in module.scope.values or primitive.name in module.types:
                    raise self.error(f"'{primitive.name}' is already defined", item.children[0])
                module.types[op.caffe_type] = op
                module.scope.values[primitive.name] = primitive
            elif kind == "net_def":
                if not top_level:
                    raise self.error("an imported library cannot define a net", item)
                if module.net_body is not None:
                    raise self.error("a file defines at most one net", item)
                module.net_body = item.children[0]
        return module

    def _import(self, item: lark.Tree, module: Module) -> None:
        token = item.children[0]
        span = self.span(token)
        target = self.string(token, module.scope, None)
        library = self.libraries.load_library(target, module.path, span)
        for name, value in library.scope.values.items():
            existing = module.scope.values.get(name)
            if existing is not None and existing is not value:
                raise ArchError(f"import '{target}' defines '{name}', which this file already "
                                f"defines", span)
            module.scope.values[name] = value
        module.types.update(library.types)

    def _param(self, item: lark.Tree, module: Module, overrides: dict[str, str]) -> None:
        name_token, type_token, default_tree, allowed_tree, doc_token = item.children
        name = str(name_token)
        span = self.span(name_token)
        if str(type_token) not in PARAM_TYPES:
            raise self.error(f"unknown parameter type '{type_token}': use int, float, str or bool",
                             type_token)
        if name in module.scope.values:
            raise self.error(f"'{name}' is already defined", name_token)
        kind = str(type_token)
        default = self.eval(default_tree, module.scope, None)
        default = self._coerce_param(default, kind, f"the default of '{name}'", default_tree)
        allowed = self._allowed(name, kind, allowed_tree, module.scope)
        value = default
        if name in overrides:
            value = self._parse_override(name, kind, overrides[name], span)
        if allowed is not None and not _is_allowed(value, allowed):
            source = f"--{name} {overrides[name]}" if name in overrides else f"the default {brief(value)}"
            raise ArchError(f"{source} is not an allowed value of '{name}': choose "
                            f"{allowed_choice(allowed)}", self.span(allowed_tree))
        doc = self.string(doc_token, module.scope, None) if doc_token is not None else ""
        module.params.append(ParamInfo(name, kind, default, allowed, doc, span))
        module.scope.values[name] = value
        module.scope.params.add(name)

    def _allowed(self, name: str, kind: str, tree: Any, scope: Scope) -> list | range | None:
        """A parameter's allowed values, each of the parameter's type. An int parameter's range
        stays a range, so `in 1..=100000` costs no 100,000-element list on every run."""
        if tree is None:
            return None
        if isinstance(tree, lark.Tree) and tree.data == "range_expr":
            allowed = range_of(self, tree, scope, None)
            if kind == "int":
                return allowed
            allowed = list(allowed)  # a float parameter takes its integers, not an interval
        else:
            allowed = self.eval(tree, scope, None)
            if not isinstance(allowed, list):
                raise self.error(f"the allowed values of '{name}' must be a list or a range, "
                                 f"got {type_name(allowed)}", tree)
        for index, option in enumerate(allowed):
            if type_name(option) not in PARAM_TYPES[kind].values:
                items = [child for child in tree.children if child is not None] \
                    if tree.data == "list_lit" else []
                raise self.error(f"'{name}' is a {kind} parameter: each allowed value must be "
                                 f"{PARAM_TYPES[kind].wording}, got {type_name(option)} "
                                 f"{brief(option)}", items[index] if len(items) == len(allowed) else tree)
        return allowed

    @staticmethod
    def _parse_override(name: str, kind: str, text: str, span: Span) -> Any:
        """`--name text` as a value of the parameter's type: numbers as the language writes
        them, within the same limits as literals."""
        try:
            if kind == "int":
                return written_int(text)
            if kind == "float":
                return written_float(text)
            if kind == "bool":
                return {"true": True, "false": False}[text]
            return text
        except (ValueError, KeyError):
            raise ArchError(f"--{name} expects {PARAM_TYPES[kind].wording}, got '{text}'",
                            span) from None
        except EvalError as error:
            raise ArchError(f"--{name} {brief(text)}: {error}", span) from None

    def _coerce_param(self, value: Any, kind: str, what: str, node: Any) -> Any:
        if type_name(value) not in PARAM_TYPES[kind].values:
            raise self.error(f"{what} must be {kind}, got {type_name(value)}", node)
        return float(value) if kind == "float" else value

    def _block(self, item: lark.Tree, module: Module) -> None:
        name_token, *rest = item.children
        body = rest[-1]
        formals = tuple((str(f.children[0]), f.children[1]) for f in rest[:-1] if f is not None)
        name = str(name_token)
        if name in PRIMITIVES:
            raise self.error(f"block name '{name}' is a built-in op: choose another name", name_token)
        if name in module.scope.values:
            raise self.error(f"'{name}' is already defined", name_token)
        seen: set[str] = set()
        for formal in rest[:-1]:
            formal_name = str(formal.children[0]) if formal is not None else None
            if formal_name in seen:
                raise self.error(f"block '{name}' has two parameters named '{formal_name}'",
                                 formal.children[0])
            seen.add(formal_name)
        module.scope.values[name] = BlockDef(name, formals, body, module.scope, self.span(name_token))

    # ----- the net ------------------------------------------------------------------------

    def build_net(self, module: Module) -> Net:
        frame = Frame(cursor=None, input=None)
        self.path = module.path
        scope = Scope(module.scope)
        try:
            for stmt in module.net_body.children:
                if isinstance(stmt, lark.Tree):
                    self.running = (self.path, stmt)
                    self.run_stmt(stmt, scope, frame)
        except RecursionError:
            raise self.too_deep() from None
        if not self.inputs:
            raise self.error("the net has no `input \"data\" [n, c, h, w]` statement", module.net_body)
        net = Net(dict(self.inputs), [shaped.layer for shaped in self.tracker.layers],
                  input_span=self.input_span)
        return net

    def run_body(self, body: lark.Tree, scope: Scope, frame: Frame) -> None:
        for stmt in body.children:
            if isinstance(stmt, lark.Tree):
                self.run_stmt(stmt, scope, frame)

    def run_stmt(self, stmt: lark.Tree, scope: Scope, frame: Frame) -> None:
        self.spend(1, stmt)
        kind = stmt.data
        if kind == "let_stmt":
            self._let(stmt, scope, frame)
        elif kind == "apply_stmt":
            self._apply(stmt, scope, frame)
        elif kind == "if_stmt":
            # Lark gives no placeholder for an absent inlined `else` part.
            test, then_body, *rest = stmt.children
            else_part = rest[0] if rest else None
            if condition(self, test, scope, frame):
                self.run_body(then_body, Scope(scope), frame)
            elif else_part is not None:
                if else_part.data == "if_stmt":
                    self.run_stmt(else_part, scope, frame)
                else:
                    self.run_body(else_part, Scope(scope), frame)
        elif kind == "for_stmt":
            self._for(stmt, scope, frame)
        elif kind == "from_stmt":
            value = self.eval(stmt.children[0], scope, frame)
            if not (isinstance(value, Tensor) or _is_bundle(value)):
                raise self.error(f"`from` takes a tensor (e.g. a name bound with `let x = current`) "
                                 f"or a list of them, got {type_name(value)}", stmt.children[0])
            frame.cursor = value
        elif kind == "input_stmt":
            self._input(stmt, scope, frame)
        else:  # pragma: no cover - the grammar has no other statements
            raise self.error(f"unsupported statement {kind}", stmt)

    def _let(self, stmt: lark.Tree, scope: Scope, frame: Frame | None) -> None:
        *name_tokens, value_tree = stmt.children
        for index, name_token in enumerate(name_tokens):
            name = str(name_token)
            if name in scope.values or name in map(str, name_tokens[:index]):
                raise self.error(f"'{name}' is already defined in this scope: `let` names are "
                                 f"fixed once bound; choose a new name", name_token)
            if self._is_param(name, scope):
                raise self.error(f"'{name}' is a parameter of this file: a `let` of that name "
                                 f"would hide --{name} from the command line; choose another name",
                                 name_token)
        value = self.eval(value_tree, scope, frame)
        if len(name_tokens) == 1:
            scope.values[str(name_tokens[0])] = value
            return
        # `let a, b = current` unpacks a list: the tensors of a bundle, or any list
        if not isinstance(value, list) or len(value) != len(name_tokens):
            got = f"a list of {len(value)}" if isinstance(value, list) else type_name(value)
            raise self.error(f"`let` with {len(name_tokens)} names unpacks a list of "
                             f"{len(name_tokens)} values, got {got}", value_tree)
        for name_token, item in zip(name_tokens, value):
            scope.values[str(name_token)] = item

    def _is_param(self, name: str, scope: Scope) -> bool:
        """Whether `name`, looked up from `scope`, is a file parameter."""
        current: Scope | None = scope
        while current is not None:
            if name in current.values:
                return name in current.params
            current = current.parent
        return False

    def _for(self, stmt: lark.Tree, scope: Scope, frame: Frame) -> None:
        first, second, iterable_tree, body = stmt.children
        iterable = self.eval(iterable_tree, scope, frame)
        if isinstance(iterable, dict):
            pairs = list(iterable.items())
        elif isinstance(iterable, list):
            pairs = list(enumerate(iterable))
        else:
            raise self.error(f"`for` iterates over a list, a range or a table, got "
                             f"{type_name(iterable)}", iterable_tree)
        variables = (str(first),) if second is None else (str(first), str(second))
        span, outer = self.span(stmt), frame.call_path
        try:
            for iteration, (key, value) in enumerate(pairs):
                inner = Scope(scope)
                if second is None:
                    inner.values[str(first)] = value if isinstance(iterable, list) else key
                else:
                    inner.values[str(first)] = key
                    inner.values[str(second)] = value
                frame.call_path = (*outer, CallFrame(
                    LOOP_ITERATION, ", ".join(variables), span,
                    tuple((name, inner.values[name]) for name in variables), _recorded, iteration))
                self.run_body(body, inner, frame)
        finally:
            frame.call_path = outer

    def _input(self, stmt: lark.Tree, scope: Scope, frame: Frame) -> None:
        name_token, shape_tree = stmt.children
        name = self.string(name_token, scope, frame)
        shape = self.eval(shape_tree, scope, frame)
        if not (isinstance(shape, list) and shape and all(type_name(d) == "int" and d > 0 for d in shape)):
            raise self.error("an input's shape is a list of positive integers, e.g. "
                             "[1, 3, size, size]", shape_tree)
        if name in self.tracker.blobs:
            raise self.error(f"input blob '{name}' is already defined", name_token)
        self._check_name(name, name_token)
        if math.prod(shape) > MAX_BLOB:
            raise self.error(f"an input of {math.prod(shape)} values is larger than a Caffe blob "
                             f"can hold ({MAX_BLOB})", shape_tree)
        self.inputs[name] = tuple(shape)
        self.tracker.blobs[name] = tuple(shape)
        self.input_span = self.input_span or self.span(stmt)
        frame.cursor = Tensor(name, tuple(shape))
        if frame.input is None:
            frame.input = frame.cursor

    # ----- applying ops and blocks ----------------------------------------------------------

    def _apply(self, stmt: lark.Tree, scope: Scope, frame: Frame) -> None:
        name_token, args_tree, as_tree, branches_tree = stmt.children
        name = str(name_token)
        positional, keywords = self._arguments(args_tree, scope, frame)
        # Statement position names an op or a block: a plain value (say a `relu` flag) of the
        # same name does not hide the op.
        try:
            target = scope.lookup(name)
        except KeyError:
            target = None
        if not isinstance(target, BlockDef):
            target = PRIMITIVES.get(name, target)
        if isinstance(target, BlockDef):
            if as_tree is not None or branches_tree is not None:
                raise self.error(f"'{name}' is a block: it takes no `as` names or branches "
                                 f"(pass names as arguments)", as_tree or branches_tree)
            self._call_block(target, positional, keywords, stmt, frame)
        elif isinstance(target, Primitive):
            self._apply_primitive(target, positional, keywords, as_tree, branches_tree, stmt,
                                  scope, frame)
        elif target is None:
            raise self.error(f"unknown op or block '{name}'{self._unknown_hint(name, scope)}",
                             name_token)
        else:
            raise self.error(f"'{name}' is a {type_name(target)}, not an op or block", name_token)

    @staticmethod
    def _unknown_hint(name: str, scope: Scope) -> str:
        """The likely intent of an unknown statement name: a Caffe layer type's op, a nearby op,
        block or statement keyword, else the list of ops."""
        caffe_type_ops = ops_for_caffe_type(name)
        if caffe_type_ops:
            return f": for Caffe's {name}, write {caffe_type_ops}"
        blocks = [n for n in scope.names() if isinstance(scope.lookup(n), BlockDef)]
        close = difflib.get_close_matches(name, [*PRIMITIVES, *blocks, *STATEMENT_KEYWORDS], n=1)
        if close:
            return f": did you mean '{close[0]}'?"
        return (f" (ops: {', '.join(PRIMITIVES)}; blocks come from this file or an `import`)")

    def _arguments(self, args_tree: lark.Tree | None, scope: Scope, frame: Frame):
        positional: list[tuple[Any, Any]] = []
        keywords: dict[str, tuple[Any, Any]] = {}
        if args_tree is None:
            return positional, keywords
        for arg in args_tree.children:
            if arg is None:
                continue
            if isinstance(arg, lark.Tree) and arg.data == "kwarg":
                key_token, value_tree = arg.children
                if str(key_token) in keywords:
                    raise self.error(f"argument '{key_token}' is given twice", key_token)
                keywords[str(key_token)] = (self.eval(value_tree, scope, frame), arg)
            else:
                if keywords:
                    raise self.error("positional arguments come before keyword arguments", arg)
                positional.append((self.eval(arg, scope, frame), arg))
        return positional, keywords

    def _call_block(self, block: BlockDef, positional, keywords, stmt: lark.Tree, frame: Frame) -> None:
        if frame.depth >= MAX_CALL_DEPTH:
            raise self.error(f"block '{block.name}' nests more than {MAX_CALL_DEPTH} calls deep "
                             f"(does it call itself?)", stmt)
        names = [formal for formal, _ in block.formals]
        if len(positional) > len(names):
            raise self.error(f"block '{block.name}' takes {len(names)} arguments, got "
                             f"{len(positional)}", positional[len(names)][1])
        bound = Scope(block.scope)
        for (value, _), formal in zip(positional, names):
            bound.values[formal] = value
        for key, (value, node) in keywords.items():
            if key not in names:
                raise self.error(f"block '{block.name}' has no parameter '{key}' (parameters: "
                                 f"{', '.join(names) or 'none'})", node)
            if key in bound.values:
                raise self.error(f"argument '{key}' is given twice", node)
            bound.values[key] = value
        missing = [formal for formal, default in block.formals
                   if formal not in bound.values and default is None]
        if missing:
            raise self.error(f"block '{block.name}' needs argument '{missing[0]}'", stmt)
        call = self.span(stmt)
        # (a tuple of a list: a generator costs more than building it, once per call)
        given = tuple([(formal, bound.values[formal]) for formal in names if formal in bound.values])
        inner = Frame(cursor=frame.cursor, input=frame.cursor, depth=frame.depth + 1,
                      call_path=(*frame.call_path,
                                 CallFrame(BLOCK_CALL, block.name, call, given, _recorded)))
        caller_path, self.path = self.path, block.span.path
        try:
            for formal, default in block.formals:
                if formal not in bound.values:
                    bound.values[formal] = self.eval(default, bound, inner)
            self.run_body(block.body, Scope(bound), inner)
        except ArchError as error:  # the error points into the block: say where it was called
            if len(error.notes) < MAX_CALL_NOTES:
                error.notes = (*error.notes, f"in block '{block.name}' called at {call}")
            raise
        finally:
            self.path = caller_path
        frame.cursor = inner.cursor

    def _apply_primitive(self, prim: Primitive, positional, keywords, as_tree, branches_tree,
                         stmt: lark.Tree, scope: Scope, frame: Frame) -> None:
        args = self._bind_primitive_args(prim, positional, keywords, stmt)
        if prim.merge and branches_tree is None and not isinstance(frame.cursor, list):
            raise self.error(f"'{prim.name}' merges branches, or the tensors of a list cursor: "
                             f"write `{prim.name} as \"name\" {{ branch {{ ... }} branch {{ ... }} }}`, "
                             f"or `from [a, b]` before it", stmt)
        if not prim.merge and branches_tree is not None:
            raise self.error(f"'{prim.name}' takes no branches: only concat, sum, product and "
                             f"maximum merge", branches_tree)
        try:
            layer_ops = prim.build(args)
        except ArgumentError as error:
            raise self.error(f"{prim.name}: {error}", stmt) from None
        names = self._layer_names(prim, len(layer_ops), as_tree, scope, frame)
        if prim.merge and branches_tree is not None:
            reads = [tensor for branch in branches_tree.children
                     for tensor in self._branch(branch, scope, frame)]
        elif layer_ops[0].max_bottoms == 0:
            reads = []  # Parameter: a blob of its own, whatever the cursor holds
        elif frame.cursor is None:
            raise self.error(f"'{prim.name}' has no input: start the net with "
                             f"`input \"data\" [1, 3, size, size]`", stmt)
        elif prim.merge:
            reads = frame.cursor  # a list: checked above
        else:
            reads = self._operands(prim, layer_ops[0], frame.cursor, stmt)
        for tensor in reads:
            self._check_current(tensor, prim, stmt)
        bottoms = [tensor.blob for tensor in reads]
        span = self.span(stmt)
        top_override, inplace = args.get("top"), args.get("inplace")
        count = prim.tops(args) if prim.tops else layer_ops[-1].top_count(len(bottoms))
        if isinstance(top_override, list) or count not in (1, None):
            self._apply_several_tops(prim, layer_ops, names, bottoms, count, top_override, inplace,
                                     keywords, stmt, frame)
            return
        for index, (op, layer_name) in enumerate(zip(layer_ops, names)):
            if index == 0:
                if inplace and not op.in_place_ok:
                    raise self.error(f"'{prim.name}' cannot run in place", keywords["inplace"][1])
                if inplace and top_override is not None:
                    raise self.error("give either `top` or `inplace = true`, not both",
                                     keywords["top"][1])
                if inplace is False and top_override is not None and top_override in bottoms:
                    raise self.error(f"top = \"{top_override}\" is the input blob, which is in "
                                     f"place after all: name a new blob", keywords["top"][1])
                in_place = op.in_place_ok and top_override is None and (
                    inplace or (inplace is None and prim.in_place))
                top = bottoms[0] if in_place else (top_override or layer_name)
            else:
                top = bottoms[0] if op.in_place_ok else layer_name
            self._check_name(top, stmt)
            if len(self.tracker.layers) >= MAX_LAYERS:
                raise self.error(f"the net exceeds {MAX_LAYERS} layers: is a repeat count too large?",
                                 stmt)
            shaped = self.tracker.add(Layer(layer_name, op, tuple(bottoms), (top,), span,
                                            frame.call_path))
            frame.cursor = Tensor(top, shaped.output, len(self.tracker.rewrites(top)))
            bottoms = [top]

    def _operands(self, prim: Primitive, op, cursor: Tensor | list[Tensor],
                  stmt: lark.Tree) -> list[Tensor]:
        """What an op that is no merge reads: the cursor, or for an op of several inputs each in a
        role of its own (the data and the size to crop it to, ...) the list cursor, which gives
        Caffe's bottoms in order, as the layer's file would."""
        tensors = _tensors(cursor)
        least, most = op.min_bottoms, op.max_bottoms
        if most == 1 and isinstance(cursor, list):
            raise self.error(f"'{prim.name}' applies to one tensor, and the cursor holds "
                             f"{len(tensors)}: pick one with `from current[0]`, or merge "
                             f"them with concat, sum, product or maximum", stmt)
        if least <= len(tensors) <= (most or len(tensors)):
            return tensors
        takes = f"at most {most}" if least == 1 else str(least) if least == most else f"at least {least}"
        fix = f"list them with `from {prim.reads}` before it" if len(tensors) < least else \
            f"pick them with `from [{', '.join(f'current[{i}]' for i in range(most))}]`"
        raise self.error(f"'{prim.name}' reads {takes} tensors, {prim.reads}, and the cursor holds "
                         f"{len(tensors)}: {fix}", stmt)

    def _apply_several_tops(self, prim: Primitive, layer_ops, names, bottoms, count, tops, inplace,
                            keywords, stmt: lark.Tree, frame: Frame) -> None:
        """An op writing other than one blob (Slice, MAX pooling with its mask, Silence): named by
        a `top` list or `<layer>_1`, `<layer>_2`, ...; the cursor becomes the list of them, or,
        with none, stays."""
        if len(layer_ops) > 1 or layer_ops[0].max_tops() == 1:
            raise self.error(f"'{prim.name}' writes one blob: give `top` one name",
                             keywords["top"][1])
        [op], [layer_name] = layer_ops, names
        if count == 0 and (tops is not None or inplace):
            given = "top" if tops is not None else "inplace"
            raise self.error(f"'{prim.name}' writes no blob: it takes no `{given}`",
                             keywords[given][1])
        if inplace:
            raise self.error(f"'{prim.name}' writes several blobs: it cannot run in place",
                             keywords["inplace"][1])
        if tops is None:
            tops = [f"{layer_name}_{index}" for index in range(1, count + 1)]
        elif isinstance(tops, str) or (count is not None and len(tops) != count):
            given = "one name" if isinstance(tops, str) else f"{len(tops)} names"
            raise self.error(f"'{prim.name}' writes {count} blobs here: give `top` a list of "
                             f"{count} names, got {given}", keywords["top"][1])
        for top in tops:
            self._check_name(top, stmt)
        shaped = self.tracker.add(Layer(layer_name, op, tuple(bottoms), tuple(tops), self.span(stmt),
                                        frame.call_path))
        if tops:
            frame.cursor = [Tensor(top, shape) for top, shape in zip(tops, shaped.outputs)]

    def _check_current(self, tensor: Tensor, prim: Primitive, stmt: lark.Tree) -> None:
        """Refuse to read a value an in-place layer has since rewritten: Caffe has only the new one."""
        rewrites = self.tracker.rewrites(tensor.blob)
        if tensor.version == len(rewrites):
            return
        writer = rewrites[tensor.version]
        shared = "" if writer.tops[0] == tensor.blob else \
            f" through '{writer.tops[0]}' (which shares its memory in Caffe)"
        raise self.error(f"'{prim.name}' reads blob '{tensor.blob}' as it was before layer "
                         f"'{writer.name}' (at {writer.span}) rewrote it in place{shared}, and "
                         f"Caffe keeps only the rewritten values: give '{writer.name}' "
                         f"`inplace = false` so both exist", stmt)

    def _bind_primitive_args(self, prim: Primitive, positional, keywords, stmt) -> dict[str, Any]:
        if len(positional) > len(prim.params):
            raise self.error(f"'{prim.name}' takes at most {len(prim.params)} positional arguments, "
                             f"got {len(positional)}", positional[len(prim.params)][1])
        args: dict[str, Any] = {}
        given: dict[str, Any] = {}
        for (value, node), param in zip(positional, prim.params):
            given[param.name] = (value, node, param)
        if keywords:  # the table of every argument, only for a statement that names some
            all_params = {p.name: p for p in (*prim.params, *PLACEMENT_PARAMS)}
            for key, (value, node) in keywords.items():
                if key not in all_params:
                    names = ", ".join(all_params)
                    raise self.error(f"'{prim.name}' has no argument '{key}' (arguments: {names})",
                                     node)
                if key in given:
                    raise self.error(f"argument '{key}' is given twice", node)
                given[key] = (value, node, all_params[key])
        for key, (value, node, param) in given.items():
            try:
                args[key] = check_argument(param, value)
            except ArgumentError as error:
                raise self.error(f"{prim.name}: {error}, got {type_name(value)} {brief(value)}",
                                 node) from None
        for param in prim.params:
            if param.name not in args:
                if param.required:
                    raise self.error(f"'{prim.name}' needs argument '{param.name}'"
                                     f"{' (' + param.doc + ')' if param.doc else ''}", stmt)
                args[param.name] = param.default
        return args

    def _layer_names(self, prim: Primitive, count: int, as_tree, scope: Scope, frame: Frame) -> list[str]:
        if as_tree is None:  # <op><counter>, skipping names the program gave layers itself
            names = []
            while len(names) < count:
                self.auto_names[prim.name] = self.auto_names.get(prim.name, 0) + 1
                name = f"{prim.name}{self.auto_names[prim.name]}"
                if not self.tracker.has_layer(name):
                    names.append(name)
            return names
        names = []
        for tree in as_tree.children:
            value = self.eval(tree, scope, frame)
            if not isinstance(value, str):
                raise self.error(f"a layer name must be a string, got {type_name(value)}", tree)
            self._check_name(value, tree)
            names.append(value)
        if len(names) != count:
            raise self.error(f"'{prim.name}' emits {count} layer{'s' if count > 1 else ''}: give "
                             f"{count} name{'s' if count > 1 else ''} after `as`, got {len(names)}",
                             as_tree)
        return names

    def _branch(self, branch: lark.Tree, scope: Scope, frame: Frame) -> list[Tensor]:
        """Run a branch from the cursor; its output, or its sub-branches' outputs in order."""
        if frame.cursor is None:
            raise self.error("a branch has no input: start the net with `input`", branch)
        inner = Frame(cursor=frame.cursor, input=frame.input, depth=frame.depth,
                      call_path=frame.call_path)
        inner_scope = Scope(scope)
        forks = []
        for child in branch.children:
            if not isinstance(child, lark.Tree):
                continue
            if child.data == "branch":
                forks.append(child)
            else:
                self.run_stmt(child, inner_scope, inner)
        if not forks:
            return _tensors(inner.cursor)
        return [tensor for fork in forks for tensor in self._branch(fork, inner_scope, inner)]

    def _check_name(self, name: str, node: Any) -> None:
        if not name or len(name) > MAX_NAME or '"' in name or "\\" in name or not name.isprintable():
            raise self.error(f"invalid layer or blob name {name[:40]!r}: names are 1 to {MAX_NAME} "
                             f"printable characters without quotes or backslashes", node)

    # ----- expressions ---------------------------------------------------------------------

    def eval(self, tree: Any, scope: Scope, frame: Frame | None) -> Any:
        if isinstance(tree, lark.Token):  # a bare terminal can only be a string in a declaration
            return self.string(tree, scope, frame)
        handler = _EXPRESSIONS.get(tree.data)
        if handler is None:  # pragma: no cover - the grammar has no other expressions
            raise self.error(f"unsupported expression {tree.data}", tree)
        value = handler(self, tree, scope, frame)
        if tree.data in _REFERENCES:
            # `a == b` in a loop over two 100,000-element lists ran for minutes when free.
            known = self.sizes.get(id(value))
            size = known[1] if known and known[0] is value else \
                len(value) if isinstance(value, (list, dict, str)) else 0
            self.spend(1 + size, tree)
            return value
        size = value_size(value)
        if size > MAX_LIST:
            raise self.error(f"a value holding more than {MAX_LIST} elements (nested lists "
                             f"included)", tree)
        if size >= _REMEMBERED and isinstance(value, (list, dict)):
            self.sizes[id(value)] = (value, size)
        self.spend(1 + size, tree)
        return value

    def spend(self, steps: int, node: Any) -> None:
        """Charge work to this elaboration's budget (see MAX_STEPS)."""
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise self.error(f"elaboration takes more than {MAX_STEPS} steps: is a repeat count "
                             f"or a list too large?", node)

    def string(self, token: lark.Token, scope: Scope, frame: Frame | None) -> str:
        """A string literal's text, its `{expressions}` evaluated; each literal is split once."""
        key = (self.path, token.line, token.column)
        parts = self.string_parts.get(key)
        if parts is None:
            parts = self.string_parts[key] = interpolation.split(token, self.span(token))
        return interpolation.join(parts, self, scope, frame, token)

    # ----- diagnostics ---------------------------------------------------------------------

    def span(self, node: Any) -> Span:
        path = self.path
        if isinstance(node, lark.Token):
            end_column = node.end_column if node.end_line == node.line else None
            return Span(path, node.line or 1, node.column or 1, node.line, end_column)
        meta = node.meta
        if meta.empty:
            return Span(path, 1, 1)
        end_column = meta.end_column if meta.end_line == meta.line else None
        return Span(path, meta.line, meta.column, meta.line, end_column)

    def error(self, message: str, node: Any) -> ArchError:
        return ArchError(message, self.span(node))

    def too_deep(self) -> ArchError:
        """For a RecursionError: blocks and expressions nested beyond what Python can evaluate."""
        path, node = self.running
        self.path = path
        return ArchError("the spec nests too deeply to evaluate: flatten nested blocks, "
                         "branches or expressions", self.span(node) if node is not None else None)


def _is_bundle(value: Any) -> bool:
    """A list of tensors: what a cursor holds after an op with several tops, or `from [a, b]`."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, Tensor) for v in value)


def _tensors(cursor: Tensor | list[Tensor]) -> list[Tensor]:
    return cursor if isinstance(cursor, list) else [cursor]


def _recorded(value: Any) -> str:
    """A block argument or loop value as a layer's call path records it: as written, cut short."""
    return brief(value, MAX_RECORDED_VALUE, quoted=True)


def _is_allowed(value: Any, allowed: list | range) -> bool:
    """Membership by the language's equality, which tells true from 1."""
    if isinstance(allowed, range):
        return type_name(value) == "int" and value in allowed
    return any(equal(value, option) for option in allowed)
