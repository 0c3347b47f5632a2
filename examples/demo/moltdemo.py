#!/usr/bin/env python3
"""moltdemo: a small DEMO compiler standing in for molt's `molt build`. It is NOT molt.

It resolves a script's import closure over the running interpreter's real stdlib,
lowers each module's AST to molt-shaped IR ops, optimises them (release), runs a
backend step, and writes molt's `--emit-ir` and `MOLT_BUILD_DIAGNOSTICS` formats, so
molt-budget can be tried without Rust. Stdlib only. Rules and limits: README.md.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from importlib.machinery import PathFinder

DEMO_VERSION = "moltdemo-1"
DEMO_FILE = os.path.abspath(__file__)
CHUNK_MAX_OPS = 1400  # molt's module_chunk_max_ops
CORE_REQUIRED = ("builtins", "sys")
CORE_CLOSURE = ("__future__", "_intrinsics", "_sitebuiltins", "builtins", "sys")
SPAWN_PKG, SPAWN_ROOTS = "multiprocessing", ("multiprocessing", "multiprocessing.spawn")
# Stdlib modules compiled once per profile into the cached "runtime library" (molt's cargo runtime build).
RUNTIME_MODULES = ("abc", "enum", "functools", "genericpath", "os", "posixpath", "stat", "types")
CONST_KINDS = {"const", "const_str", "const_none", "const_bool", "const_float", "const_bytes", "const_ellipsis"}
PURE_KINDS = CONST_KINDS | {"load_var", "tuple_new", "func_new"}
NO_RAISE = CONST_KINDS | {"load_var", "label", "line", "check_exception", "trace_enter_slot", "tuple_new"}
LABEL_REFS = {"label", "loop_start", "loop_end", "jump", "try_start", "try_end", "loop_break_if_done",
              "loop_break_if_false"}
BLOCK_KINDS = LABEL_REFS | {"if", "else", "end_if"}
EXPR_KINDS = {"Tuple": "tuple_new", "List": "list_new", "Set": "set_new", "Dict": "dict_new", "Subscript": "index",
              "JoinedStr": "string_join", "FormattedValue": "string_format", "Slice": "slice_new", "IfExp": "select"}
STMT_KINDS = {"Raise": "raise", "Assert": "assert", "Delete": "del_boundary", "Break": "loop_break",
              "Continue": "loop_continue", "Pass": None, "Global": None, "Nonlocal": None}
CONST_OPS = {type(None): "const_none", type(Ellipsis): "const_ellipsis", bool: "const_bool", int: "const",
             str: "const_str", bytes: "const_bytes"}
COMPS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda) + COMPS
PHASE_ATTR_KEYS = ("backend_codegen", "fail_closed_validation", "final_app_codegen", "frontend_lowering",
                   "ir_lowering", "module_analysis", "module_graph", "resolve_entry", "seal",
                   "split_runtime_processing", "wasm_link_core", "wasm_link_total", "wasm_strip")
INTRINSICS_SRC = '''"""Stand-in for molt's _intrinsics module."""
_REGISTRY = {}
def require_intrinsic(name, namespace=None):
    table = _REGISTRY if namespace is None else namespace
    if name not in table:
        raise RuntimeError(f"missing intrinsic {name!r}")
    return table[name]
'''


class FrontendError(Exception):
    """A user-facing compile error: exit 2, no IR, no diagnostics (as in molt)."""


@dataclass
class Mod:
    """One module of the closure. kind: source | native (no .py: synthesized init) | standin."""
    name: str
    path: str
    kind: str
    search: list[str] | None = None
    project: bool = False
    source: bytes = b""
    tree: ast.Module | None = None


class Phases:
    """molt's phase markers: set once each; a phase lasts until the next marker starts."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.starts = {"resolve_entry": self.t0}

    def mark(self, name: str, at: float | None = None) -> None:
        self.starts.setdefault(name, time.perf_counter() if at is None else at)

    def durations(self, end: float) -> dict[str, float]:
        items = sorted(self.starts.items(), key=lambda kv: kv[1])  # stable: ties keep insertion order
        return {n: round(e - t, 6) for (n, t), e in zip(items, [t for _, t in items[1:]] + [end])}


# ------------------------------------------------------------------------------ module graph
def static_platform_test(test: ast.expr) -> bool | None:
    """Value of `sys.platform ==/!= "x"` or `os.name ==/!= "x"`, else None (not static)."""
    try:
        left, (cmp,), (right,) = test.left, test.ops, test.comparators
        actual = {"sys.platform": sys.platform, "os.name": os.name}.get(f"{left.value.id}.{left.attr}")
    except (AttributeError, ValueError):
        return None
    if actual is None or not isinstance(cmp, (ast.Eq, ast.NotEq)) or not isinstance(right, ast.Constant):
        return None
    return (actual == right.value) == isinstance(cmp, ast.Eq)


class Graph:
    """Finds modules (entry directory first, then the interpreter's stdlib) and import edges."""

    def __init__(self, entry: Mod) -> None:
        paths = sysconfig.get_paths()
        self.stdlib = sorted({os.path.abspath(paths["stdlib"]), os.path.abspath(paths["platstdlib"])})
        self.roots = [os.path.dirname(entry.path)] + self.stdlib + [os.path.join(d, "lib-dynload") for d in self.stdlib]
        self.mods: dict[str, Mod | None] = {entry.name: entry}

    def find(self, name: str) -> Mod | None:
        """Locate `name` with PathFinder, so no module (or parent package) is ever executed."""
        if name not in self.mods:
            mod, parent = None, name.rpartition(".")[0]
            if name == "_intrinsics":
                mod = Mod(name, DEMO_FILE, "standin", source=INTRINSICS_SRC.encode())
            elif name in sys.builtin_module_names:
                mod = Mod(name, DEMO_FILE, "native")
            else:
                path = (self.find(parent) or Mod("", "", "")).search if parent else self.roots
                spec = PathFinder.find_spec(name, path) if path else None
                origin = os.path.abspath(spec.origin) if spec and spec.origin and spec.has_location else ""
                if origin.endswith(".py"):
                    mod = Mod(name, origin, "source", list(spec.submodule_search_locations or []) or None,
                              project=not any(origin.startswith(d + os.sep) for d in self.stdlib))
                elif origin:
                    mod = Mod(name, origin, "native")
            self.mods[name] = mod
        return self.mods[name]

    def parse(self, mod: Mod) -> ast.Module | None:
        """Read and parse once; a SyntaxError anywhere in the closure is a frontend error."""
        if mod.tree is None and mod.kind != "native":
            if not mod.source:
                with open(mod.path, "rb") as fh:
                    mod.source = fh.read()
            try:
                mod.tree = ast.parse(mod.source, filename=mod.path)
            except SyntaxError as exc:
                raise FrontendError(f"error: {mod.path}:{exc.lineno}: SyntaxError: {exc.msg}") from None
        return mod.tree

    def imports(self, mod: Mod) -> list[tuple[str, bool]]:
        """(target, inside a function?) per import; `from p import x` also yields p.x (maybe a submodule)."""
        out: list[tuple[str, bool]] = []
        pkg = (mod.name if mod.search else mod.name.rpartition(".")[0]).split(".")

        def walk(nodes: list, in_func: bool) -> None:
            for ch in nodes:
                f = in_func or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                taken = static_platform_test(ch.test) if isinstance(ch, ast.If) else None
                if taken is not None:  # prune the branch that cannot run on this platform
                    walk(ch.body if taken else ch.orelse, f)
                    continue
                if isinstance(ch, ast.Import):  # `import a.b` imports a and a.b
                    parts = [a.name.split(".") for a in ch.names]
                    out.extend((".".join(p[:i + 1]), f) for p in parts for i in range(len(p)))
                elif isinstance(ch, ast.ImportFrom):
                    base = pkg[: len(pkg) - ch.level + 1] if ch.level else []
                    target = ".".join(base + [ch.module or ""]).strip(".")
                    if target:
                        out.extend([(target, f)] + [(f"{target}.{a.name}", f) for a in ch.names if a.name != "*"])
                walk(list(ast.iter_child_nodes(ch)), f)
        walk(self.parse(mod).body, False)
        return out

    def closure(self, roots: list[str], barrier: str | None = None) -> tuple[dict[str, bool], set[str]]:
        """module -> expanded?, plus the modules reached by an edge or as a root (README: closure rule)."""
        state: dict[str, bool] = {}
        reached: set[str] = set()
        work = [(r, True, True) for r in reversed(roots)]
        while work:
            name, expand, by_edge = work.pop()
            mod = self.find(name)
            if mod is None:
                continue
            reached |= {name} if by_edge else set()
            barred = barrier is not None and (name == barrier or name.startswith(barrier + "."))
            eff = expand and mod.kind == "source" and name not in CORE_CLOSURE and not barred
            if name in state and (state[name] or not eff):
                continue
            state[name] = eff
            if "." in name:
                work.append((name.rpartition(".")[0], eff, False))
            for target, in_func in reversed(self.imports(mod) if eff else []):
                same = target.split(".")[0] == name.split(".")[0]
                if mod.project or same or not in_func:
                    work.append((target, mod.project or same, True))
        return state, reached


def resolve_closure(graph: Graph, entry: str) -> dict[str, list[str]]:
    """module -> sorted reasons, with molt's reason names."""
    reasons: dict[str, set[str]] = {}

    def add(names, reason: str) -> None:
        for n in names:
            reasons.setdefault(n, set()).add(reason)
    core, _ = graph.closure(list(CORE_CLOSURE))
    ent, ent_reached = graph.closure([entry], barrier=SPAWN_PKG)
    add(core, "core_closure")
    add(CORE_REQUIRED, "core_required")
    add(ent_reached, "entry_closure")
    add([entry], "entry_root")
    found = set(core) | set(ent)
    if any(n.split(".")[0] == SPAWN_PKG for n in ent):  # molt adds the multiprocessing.spawn graph
        spawn, sp_reached = graph.closure(sorted(set(SPAWN_ROOTS) | {n for n in ent if n.split(".")[0] == SPAWN_PKG}))
        add(sp_reached, "spawn_closure")
        found |= set(spawn)
    add([n for n in found if n not in reasons], "package_parent")
    return {n: sorted(reasons[n]) for n in sorted(reasons)}


# ------------------------------------------------------------------------------ analysis
def analyze(tree: ast.Module) -> dict[int, tuple[set[str], set[str]]]:
    """Scope table: id(function-like node) -> (locals, cells = locals also read by nested scopes)."""
    table = {}
    for node in ast.walk(tree):
        if not isinstance(node, SCOPES) or isinstance(node, ast.ClassDef):
            continue
        stored, declared, nested = set(), set(), set()
        if isinstance(node, COMPS):
            todo = [x for g in node.generators for x in [g.target, *g.ifs]]
            todo += [getattr(node, a) for a in ("elt", "key", "value") if hasattr(node, a)]
        else:
            a = node.args
            stored |= {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
            todo = list(node.body) if isinstance(node.body, list) else [node.body]
        while todo:
            n = todo.pop()
            if isinstance(n, SCOPES):
                stored |= {n.name} if hasattr(n, "name") else set()
                nested |= {x.id for x in ast.walk(n) if isinstance(x, ast.Name)}
                continue
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
                stored.add(n.id)
            elif isinstance(n, ast.ExceptHandler) and n.name:
                stored.add(n.name)
            elif isinstance(n, (ast.Global, ast.Nonlocal)):
                declared |= set(n.names)
            elif isinstance(n, ast.alias):
                stored.add((n.asname or n.name).split(".")[0])
            todo.extend(ast.iter_child_nodes(n))
        table[id(node)] = (stored - declared, (stored - declared) & nested)
    return table


# ------------------------------------------------------------------------------ lowering
def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@dataclass
class Fn:
    """One IR function being built; ctx is molt's execution_context ("" = none)."""
    name: str
    params: list[str]
    ctx: str
    scope: tuple = (frozenset(), frozenset())  # (locals, cells)
    outer: tuple = ()  # locals of the enclosing functions
    line: int | None = None
    ops: list = field(default_factory=list)
    labels: int = 0

    def to_json(self, path: str) -> dict:
        f = {"name": self.name, "params": self.params, "ops": self.ops}
        f.update({"execution_context": self.ctx} if self.ctx else {})
        f.update({"app_callable_bindings": []} if self.name.startswith("molt_init_") else {})
        return {**f, **({"param_types": ["i64"] * len(self.params)} if self.params else {}), "source_file": path}


class Lowerer:
    """Lowers one module: a function per def/lambda/comprehension, module chunks, one molt_init_*."""

    def __init__(self, mod: Mod, scopes: dict) -> None:
        self.mod, self.scopes, self.sym, self.nvals, self.cls = mod, scopes, mod.name.replace(".", "_"), 0, None
        self.fns: list[Fn] = []
        self.names: set[str] = set()
        self.fn = Fn("", [], "")

    def uniq(self, base: str) -> str:
        """molt-style symbol for a new function, unique within the module."""
        stem = f"{self.sym}{'_' if self.cls else '__'}{base}"  # molt: mod__func, mod__Class_method
        name, i = stem, 1
        while name in self.names:
            i, name = i + 1, f"{stem}_{i}"
        self.names.add(name)
        return name

    def op(self, kind: str, args=None, out: bool = True, exc: bool = False, **kw) -> str:
        """Append one op (plus check_exception when it can raise); return its value name."""
        o, line = {"kind": kind, **kw}, self.fn.line
        if out:
            self.nvals += 1
            o["out"] = f"v{self.nvals}"
        o.update({"args": list(args)} if args is not None else {})
        self.fn.ops.append({**o, "source_line": line} if line else o)
        if exc:
            self.fn.ops.append({"kind": "check_exception", "value": 1, **({"source_line": line} if line else {})})
        return o.get("out", "")

    def label(self, kind: str, value: int = 0, args: list | None = None) -> int:
        """Emit an op that carries a label id; value 0 allocates a fresh id."""
        if not value:
            self.fn.labels += 1
            value = self.fn.labels
        self.op(kind, args, out=False, value=value)
        return value

    def cstr(self, s: str) -> str:
        return self.op("const_str", s_value=s)

    def lower_module(self) -> list[dict]:
        """globals helper + module chunks (<= CHUNK_MAX_OPS each) + molt_init_<mod>, sorted by name."""
        chunks, body = [], self.mod.tree.body if self.mod.tree else None
        if body is not None:
            self.fn = Fn(self.uniq("__molt_globals_builtin__"), [], "")
            m = self.op("module_cache_get", [self.cstr(self.mod.name)], exc=True)
            self.op("ret", [self.op("module_get_attr", [m, self.cstr("__dict__")], exc=True)], out=False)
            self.fns.append(self.fn)
        while body is not None and (body or not chunks):
            self.fn = Fn(self.uniq(f"molt_module_chunk_{len(chunks) + 1}"), ["__molt_module_obj__"], "inherited")
            while body and len(self.fn.ops) < CHUNK_MAX_OPS:
                self.stmt(body[0])
                body = body[1:]
            self.op("ret_void", out=False)
            self.fns.append(self.fn)
            chunks.append(self.fn.name)
        self.fn = Fn(f"molt_init_{self.sym}", [], "local")
        name = self.cstr(self.mod.name)
        m = self.op("module_new", [name], exc=True)
        self.op("module_cache_set", [name, m], out=False, exc=True)
        package = self.mod.name.rpartition(".")[0]
        for attr, val in (("__name__", self.mod.name), ("__file__", self.mod.path), ("__package__", package)):
            self.op("module_set_attr", [m, self.cstr(attr), self.cstr(val)], out=False, exc=True)
        if self.mod.kind == "native":
            self.op("module_bind_native", [m], out=False, exc=True, s_value=self.mod.name)
        for ch in chunks:
            self.op("call", [m], exc=True, s_value=ch)
        self.op("ret_void", out=False)
        self.fns.append(self.fn)
        return sorted((f.to_json(self.mod.path) for f in self.fns), key=lambda f: f["name"])

    def function(self, node: ast.AST, base: str) -> str:
        """Lower a def/lambda/comprehension into its own function; return the function object."""
        a = getattr(node, "args", None)
        params = [x.arg for x in a.posonlyargs + a.args + [a.vararg] + a.kwonlyargs + [a.kwarg] if x] if a else [".0"]
        defaults = [self.expr(d) for d in a.defaults + a.kw_defaults if d] if a else []
        name, outer, cls, self.cls = self.uniq(base), self.fn, self.cls, None
        chain = outer.outer + ((outer.scope[0],) if outer.ctx == "local" else ())
        self.fn = Fn(name, params, "local", self.scopes.get(id(node), Fn.scope), chain, node.lineno)
        self.op("trace_enter_slot", out=False, value=0)
        for p in params:
            self.op("store_var", out=False, exc=True, var=p)
        if isinstance(node, COMPS):
            acc = self.op(snake(type(node).__name__).replace("_comp", "_new").replace("generator_exp", "gen_new"), [])
            self.comp_loops(node, node.generators, acc)
            self.op("ret", [acc], out=False)
        elif isinstance(node, ast.Lambda):
            self.op("ret", [self.expr(node.body)], out=False, exc=True)
        else:
            self.block(node.body)
        self.op("trace_exit", out=False)
        self.op("ret", [self.op("const_none")], out=False)
        done, self.fn, self.cls = self.fn, outer, cls
        self.fns.append(done)
        return self.op("func_new", defaults, exc=True, s_value=done.name, value=len(params))

    def comp_loops(self, node: ast.AST, gens: list, acc: str) -> None:
        if not gens:
            vals = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            kind = "yield" if isinstance(node, ast.GeneratorExp) else "container_add"
            return self.op(kind, [acc] + [self.expr(v) for v in vals], exc=True)
        g = gens[0]

        def body() -> None:
            for t in g.ifs:
                self.op("if", [self.op("is_truthy", [self.expr(t)], exc=True)], out=False)
            self.comp_loops(node, gens[1:], acc)
            for _ in g.ifs:
                self.op("end_if", out=False)
        self.loop(g.iter if g is not node.generators[0] else None, g.target, body)

    def loop(self, iter_node: ast.expr | None, target: ast.expr | None, body) -> None:
        """A flat molt-like loop; target None = while (iter_node is the test), iter_node None = `.0`."""
        if target is not None:
            src = self.expr(iter_node) if iter_node is not None else self.op("load_var", var=".0")
            it = self.op("iter_new", [src], exc=True)
        top = self.label("loop_start")
        self.label("label", top)
        if target is None:
            end = self.label("loop_break_if_false", 0, [self.op("is_truthy", [self.expr(iter_node)], exc=True)])
        else:
            item = self.op("iter_next", [it], exc=True)
            end = self.label("loop_break_if_done", 0, [item])
            self.store(target, item)
        body()
        self.label("jump", top)
        self.label("label", end)
        self.label("loop_end", top)

    # -- statements ------------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        """A `line` marker, then a dedicated handler or the generic lowering."""
        self.fn.line = s.lineno
        self.op("line", out=False, value=s.lineno, col_offset=s.col_offset, end_col_offset=s.end_col_offset)
        kind = type(s).__name__.replace("Async", "").replace("TryStar", "Try")
        handler = getattr(self, "s_" + kind, None)
        if handler:
            return handler(s)
        args = []
        for ch in ast.iter_child_nodes(s):  # generic: values, nested bodies, then one op
            if isinstance(ch, ast.expr):
                args.append(self.expr(ch))
            elif isinstance(ch, (ast.stmt, ast.match_case)):
                self.block([ch] if isinstance(ch, ast.stmt) else ch.body)
        if STMT_KINDS.get(kind, "") is not None:
            self.op(STMT_KINDS.get(kind) or snake(kind), args, out=False, exc=bool(args))

    def s_Expr(self, s: ast.Expr) -> None:
        self.expr(s.value)

    def s_Assign(self, s: ast.stmt) -> None:
        if isinstance(s, ast.AugAssign):
            cur = self.expr(ast.Name(s.target.id, ast.Load()) if isinstance(s.target, ast.Name) else s.target)
            new = self.op("inplace_" + snake(type(s.op).__name__), [cur, self.expr(s.value)], exc=True)
            return self.store(s.target, new)
        v = self.expr(s.value) if s.value is not None else None
        for t in (s.targets if isinstance(s, ast.Assign) else [s.target]) if v is not None else []:
            self.store(t, v)

    s_AugAssign = s_AnnAssign = s_Assign

    def s_Return(self, s: ast.Return) -> None:
        v = self.expr(s.value) if s.value else self.op("const_none")
        self.op("trace_exit", out=False)
        self.op("ret", [v], out=False)

    def s_If(self, s: ast.If) -> None:
        self.op("if", [self.op("is_truthy", [self.expr(s.test)], exc=True)], out=False)
        self.block(s.body)
        if s.orelse:
            self.op("else", out=False)
            self.block(s.orelse)
        self.op("end_if", out=False)

    def s_For(self, s: ast.stmt) -> None:
        self.loop(getattr(s, "iter", getattr(s, "test", None)), getattr(s, "target", None), lambda: self.block(s.body))
        self.block(s.orelse)

    s_While = s_For

    def s_Try(self, s: ast.Try) -> None:
        handler = self.label("try_start")
        self.block(s.body)
        self.label("try_end", handler)
        self.block(s.orelse)
        done = self.label("jump")
        self.label("label", handler)
        exc = self.op("exception_last")
        for h in s.handlers:
            match = self.op("exception_match", [exc, self.expr(h.type)], exc=True) if h.type else exc
            self.op("if", [match], out=False)
            if h.name:
                self.store(ast.Name(h.name, ast.Store()), exc)
            self.block(h.body)
            self.op("end_if", out=False)
        self.label("label", done)
        self.block(s.finalbody)
        self.op("exception_reraise_pending", out=False, exc=True)

    def s_With(self, s: ast.With) -> None:
        managers = [self.expr(item.context_expr) for item in s.items]
        for item, mgr in zip(s.items, managers):
            val = self.op("context_enter", [mgr], exc=True)
            if item.optional_vars is not None:
                self.store(item.optional_vars, val)
        self.block(s.body)
        for mgr in reversed(managers):
            self.op("context_exit", [mgr], exc=True)

    def s_Import(self, s: ast.stmt) -> None:
        level = getattr(s, "level", 0) or 0
        for a in s.names if isinstance(s, ast.Import) else [None]:
            name = a.name if a else "." * level + (s.module or "")
            m = self.op("module_import", [self.cstr(name)], exc=True, s_value=name, value=level)
            if a:
                self.store(ast.Name(a.asname or a.name.split(".")[0], ast.Store()), m)
        for a in s.names if isinstance(s, ast.ImportFrom) else []:
            if a.name == "*":
                self.op("module_import_star", [m], out=False, exc=True)
            else:
                value = self.op("module_import_from", [m, self.cstr(a.name)], exc=True)
                self.store(ast.Name(a.asname or a.name, ast.Store()), value)

    s_ImportFrom = s_Import

    def s_FunctionDef(self, s: ast.FunctionDef) -> None:
        decorators = [self.expr(d) for d in s.decorator_list]
        f = self.function(s, s.name)
        for d in reversed(decorators):
            f = self.op("call_bind", [d, f], exc=True)
        self.store(ast.Name(s.name, ast.Store()), f)

    def s_ClassDef(self, s: ast.ClassDef) -> None:
        """Class body runs in the current function; its stores become class_set_attr."""
        bases = [self.expr(b) for b in s.bases + [k.value for k in s.keywords]]
        cls = self.op("class_new", [self.cstr(s.name)] + bases, exc=True, s_value=s.name)
        saved = self.sym, self.cls
        self.sym, self.cls = f"{self.sym}__{s.name}", (cls, s.name)
        self.block(s.body)
        self.sym, self.cls = saved
        self.store(ast.Name(s.name, ast.Store()), cls)

    # -- stores and expressions --------------------------------------------------------------
    def store(self, t: ast.AST, v: str) -> None:
        """Bind value v to an assignment target (class attr, module global, local/cell, attr, item, unpack)."""
        if isinstance(t, ast.Name) and self.cls:
            self.op("class_set_attr", [self.cls[0], self.cstr(t.id), v], out=False, exc=True, **{"class": self.cls[1]})
        elif isinstance(t, ast.Name) and self.fn.ctx != "local":
            self.op("module_set_attr", ["__molt_module_obj__", self.cstr(t.id), v], out=False, exc=True)
        elif isinstance(t, ast.Name):
            cell = t.id in self.fn.scope[1]
            if cell:
                self.op("closure_store", [v], out=False, exc=True, s_value=t.id)
            else:
                self.op("store_var", [v], out=False, var=t.id)
        elif isinstance(t, ast.Attribute):
            self.op("set_attr", [self.expr(t.value), v], out=False, exc=True, s_value=t.attr)
        elif isinstance(t, ast.Subscript):
            self.op("store_index", [self.expr(t.value), self.expr(t.slice), v], out=False, exc=True)
        elif isinstance(t, (ast.Tuple, ast.List)):
            parts = self.op("unpack_sequence", [v], exc=True, value=len(t.elts))
            for i, e in enumerate(t.elts):
                self.store(e, self.op("index", [parts, self.op("const", value=i)], exc=True))
        elif isinstance(t, ast.Starred):
            self.store(t.value, v)

    def expr(self, n: ast.expr) -> str:
        """Lower an expression; returns the value name. Unlisted nodes: children first, then one op."""
        kind = type(n).__name__
        special = getattr(self, "x_" + kind, None)
        if special:
            return special(n)
        if isinstance(n, COMPS) or kind == "Lambda":
            f = self.function(n, snake(kind).replace("_", ""))
            if kind == "Lambda":
                return f
            return self.op("call_bind", [f, self.op("iter_new", [self.expr(n.generators[0].iter)], exc=True)], exc=True)
        args = [self.expr(c) for c in ast.iter_child_nodes(n) if isinstance(c, ast.expr)]
        opnode = getattr(n, "op", None) or (n.ops[0] if isinstance(n, ast.Compare) else n)
        kind = EXPR_KINDS.get(kind) or snake(type(opnode).__name__)
        return self.op(kind, args, exc=kind != "tuple_new", **({"type_hint": "tuple"} if kind == "tuple_new" else {}))

    def x_Constant(self, n: ast.Constant) -> str:
        v = n.value
        if v is None or v is Ellipsis or isinstance(v, bool) or isinstance(v, int) and abs(v) < 2 ** 63:
            return self.op(CONST_OPS.get(type(v), "const"), **({} if v is None or v is Ellipsis else {"value": int(v)}))
        if isinstance(v, float):
            return self.op("const_float", f_value=v if v == v and abs(v) != float("inf") else repr(v))
        text = v if isinstance(v, str) else v.decode("latin-1") if isinstance(v, bytes) else repr(v)
        return self.op("const_bigint" if isinstance(v, int) else CONST_OPS.get(type(v), "const_complex"), s_value=text)

    def x_Name(self, n: ast.Name) -> str:
        """Locals are load_var, enclosing-function names closure_load, the rest module globals."""
        fn = self.fn
        if fn.ctx == "local" and n.id in fn.scope[0] - fn.scope[1]:
            return self.op("load_var", var=n.id)
        if fn.ctx == "local" and (n.id in fn.scope[1] or any(n.id in s for s in fn.outer)):
            return self.op("closure_load", exc=True, s_value=n.id)
        return self.op("module_get_global", ["__molt_module_obj__", self.cstr(n.id)], exc=True)

    def x_Attribute(self, n: ast.Attribute) -> str:
        return self.op("get_attr", [self.expr(n.value)], exc=True, s_value=n.attr)

    def x_NamedExpr(self, n: ast.NamedExpr) -> str:
        v = self.expr(n.value)
        self.store(n.target, v)
        return v

    def x_Call(self, n: ast.Call) -> str:
        if isinstance(n.func, ast.Name) and n.func.id == "print" and len(n.args) == 1 and not n.keywords:
            self.op("print", [self.expr(n.args[0])], out=False, exc=True)
            return self.op("const_none")
        func = self.expr(n.func)
        ca = self.op("callargs_new", [func])
        for a in n.args:
            star = isinstance(a, ast.Starred)
            value = self.expr(a.value if star else a)
            self.op("callargs_push_star" if star else "callargs_push_pos", [ca, value], out=False, exc=True)
        for k in n.keywords:
            key = self.cstr(k.arg) if k.arg else self.op("const_none")
            self.op("callargs_push_kw", [ca, key, self.expr(k.value)], out=False, exc=True)
        return self.op("call_bind", [func, ca], exc=True)


# ------------------------------------------------------------------------------ optimisation
def verify(fn: dict) -> None:
    """Every `vN` argument must be defined earlier in the function (molt runs a verifier too)."""
    defined: set[str] = set()
    for o in fn["ops"]:
        for a in o.get("args", ()):
            if a[:1] == "v" and a[1:].isdigit() and a not in defined:
                raise RuntimeError(f"verifier: {a} used before definition in {fn['name']}")
        defined.add(o.get("out", ""))


def pass_cse(ops: list[dict]) -> list[dict]:
    """Block-local constant CSE: keep the first identical constant, rewrite later uses."""
    alias, seen, out = {}, {}, []
    for o in ops:
        if any(a in alias for a in o.get("args", ())):
            o["args"] = [alias.get(a, a) for a in o["args"]]
        seen = {} if o["kind"] in BLOCK_KINDS else seen
        if o["kind"] in CONST_KINDS and "out" in o:
            key = (o["kind"], repr(o.get("value")), o.get("s_value"), repr(o.get("f_value")))
            if key in seen:
                alias[o["out"]] = seen[key]
                continue
            seen[key] = o["out"]
        out.append(o)
    return out


def pass_copy_prop(ops: list[dict]) -> list[dict]:
    """Block-local copy propagation: a load_var after store_var x <- v (same block) becomes v."""
    alias, known = {}, {}
    for o in ops:
        if any(a in alias for a in o.get("args", ())):
            o["args"] = [alias.get(a, a) for a in o["args"]]
        if o["kind"] in BLOCK_KINDS or o["kind"] in ("closure_store", "del_boundary"):
            known = {}
        elif o["kind"] == "store_var":
            known[o["var"]] = o.get("args", [None])[0]
        elif o["kind"] == "load_var" and known.get(o["var"]):
            alias[o["out"]] = known[o["var"]]
    return ops


def pass_dce(ops: list[dict]) -> list[dict]:
    """Drop pure ops whose value is never used, to a fixpoint."""
    while True:
        used = Counter(a for o in ops for a in o.get("args", ()))
        kept = [o for o in ops if not (o["kind"] in PURE_KINDS and "out" in o and o["out"] not in used)]
        if len(kept) == len(ops):
            return kept
        ops = kept


def pass_checks(ops: list[dict]) -> list[dict]:
    """Drop check_exception after ops that cannot raise; merge back-to-back line markers."""
    out: list[dict] = []
    for o in ops:
        prev = out[-1]["kind"] if out else "label"
        if o["kind"] == "check_exception" and prev in NO_RAISE:
            continue
        if o["kind"] == "line" and prev == "line":
            out.pop()
        out.append(o)
    return out


def pass_dead_stores(ops: list[dict]) -> list[dict]:
    """Remove store_var of locals never read in the function (cells use closure_store)."""
    loaded = {o.get("var") for o in ops if o["kind"] == "load_var"}
    return [o for o in ops if not (o["kind"] == "store_var" and o.get("var") not in loaded)]


def optimise(functions: list[dict], profile: str) -> list[dict]:
    """Renumber labels per function and verify. release: pass rounds to a fixpoint (release-fast: one)."""
    rounds = {"dev": 0, "release-fast": 1}.get(profile, 4)
    passes = [pass_cse, pass_dce, pass_checks] + ([pass_copy_prop, pass_dead_stores, pass_dce] if rounds > 1 else [])
    for fn in functions:
        ids: dict[int, int] = {}
        for o in fn["ops"]:
            if o["kind"] in LABEL_REFS:
                o["value"] = ids.setdefault(o["value"], len(ids) + 1)
        verify(fn)
        for _ in range(rounds):
            before = len(fn["ops"])
            for p in passes:
                fn["ops"] = p(fn["ops"])
                verify(fn)
            if len(fn["ops"]) == before:
                break
    return functions


# ------------------------------------------------------------------------------ IR assembly, backend
def init_symbol(name: str) -> str:
    return "molt_init_" + name.replace(".", "_")


def module_registry(mods: list[Mod]) -> dict:
    """molt's module registry: a binary table of names, paths and init slots, as an int list."""
    strings, table = bytearray(), bytearray()
    for i, m in enumerate(mods):
        n, p = m.name.encode(), m.path.encode()
        row = (len(strings), len(n), len(strings) + len(n), len(p), i)
        table += b"".join(x.to_bytes(4, "little") for x in row) + b"\xff" * 8
        strings += n + p
    digest = hashlib.sha256(bytes(table + strings)).hexdigest()
    head = b"MOLTMOD2" + (2).to_bytes(4, "little") + len(mods).to_bytes(4, "little") + bytes.fromhex(digest)[:16]
    relocs = [[len(head) + 28 * i + 20, init_symbol(m.name)] for i, m in enumerate(mods)]
    return {"schema": 2, "registry_digest": digest, "blob": list(head + table + strings), "relocs": relocs,
            "init_symbols": sorted(r[1] for r in relocs), "init_rows": [[i + 1, r[1]] for i, r in enumerate(relocs)]}


def lower_all(mods: list[Mod], profile: str, timings: dict | None = None) -> list[dict]:
    """Lower + optimise every module, in the given order, recording per-module lower_s."""
    functions = []
    for m in mods:
        t = time.perf_counter()
        fns = Lowerer(m, analyze(m.tree) if m.tree else {}).lower_module()
        optimise(fns, profile)
        functions += fns
        if timings is not None:
            timings[m.name]["lower_s"] = time.perf_counter() - t
    return functions


def build_ir(mods: list[Mod], profile: str, timings: dict) -> dict:
    """The whole-program IR: every module's functions, molt_main (calls every init), the registry."""
    main = [{"kind": "call", "s_value": "molt_runtime_init", "args": [], "out": "v0"}]
    for i, m in enumerate(mods, 1):
        main += [{"kind": "call", "s_value": init_symbol(m.name), "args": [], "out": f"v{i}"},
                 {"kind": "check_exception", "value": 1}]
    main_fn = {"name": "molt_main", "params": [], "ops": main + [{"kind": "ret_void"}]}
    return {"functions": lower_all(mods, profile, timings) + [main_fn], "module_registry": module_registry(mods)}


def ir_stats(ir: dict) -> dict:
    """binary_image_analysis.backend_ir.backend_ir, computed from the IR itself."""
    kinds = Counter(o["kind"] for f in ir["functions"] for o in f["ops"])
    top_kinds = sorted(kinds.items(), key=lambda kc: (-kc[1], kc[0]))
    per_fn = sorted((-len(f["ops"]), f["name"], sum("source_line" in o for o in f["ops"])) for f in ir["functions"])
    return {"function_count": len(ir["functions"]), "op_count": sum(kinds.values()), "call_op_count": kinds["call"],
            "op_kind_count": len(kinds),
            "op_kind_top": [{"kind": k, "count": c} for k, c in top_kinds][:20],
            "top_functions_by_ops": [{"function": n, "ops": -c, "source_site_ops": s} for c, n, s in per_fn[:10]],
            "function_order_hash": hashlib.sha256("\n".join(f["name"] for f in ir["functions"]).encode()).hexdigest(),
            "profile_attached": False, "runtime_feedback_attached": False}


def backend_compile(payload: bytes, runtime: str, profile: str) -> bytes:
    """Demo codegen: encode every op as a compact record, compress, then link the runtime library.

    release links with "LTO": the runtime's IR is re-optimised and re-encoded with the program.
    """
    ir, kinds, lines = json.loads(payload), {}, []
    lto = profile == "release" and bool(runtime)
    if lto:
        with open(runtime + ".ir.json", "rb") as fh:
            ir["functions"] += optimise(json.load(fh), "release")
    for f in ir["functions"]:
        lines.append(f"fn {f['name']}({','.join(f['params'])})")
        for o in f["ops"]:
            kid = kinds.setdefault(o["kind"], len(kinds))
            lines.append("\x1f".join([str(kid)] + [str(v) for k, v in o.items() if k != "kind"]))
    body = zlib.compress("\n".join(lines).encode(), {"dev": 1, "release-fast": 6}.get(profile, 9))
    if runtime and not lto:
        with open(runtime, "rb") as fh:
            body += fh.read()
    head = f"MOLTDEMO-BIN 1 {hashlib.sha256(body).hexdigest()} {len(ir['functions'])} {len(lines)}\n"
    return head.encode() + json.dumps(sorted(kinds, key=kinds.get)).encode() + b"\n" + body


def backend_daemon() -> int:
    """Child side of MOLT_BACKEND_DAEMON on: handshake, take one request, compile, report."""
    print("ready", flush=True)
    req = json.loads(sys.stdin.readline())
    with open(req["input"], "rb") as fh:
        atomic_write(req["output"], backend_compile(fh.read(), req["runtime"], req["profile"]))
    print("done", flush=True)
    return 0


def run_backend(payload: bytes, staging: str, runtime: str, profile: str, daemon: bool, ph: Phases) -> None:
    """The backend step in a child process (daemon on) or in this process (daemon off)."""
    if not daemon:
        ph.mark("backend_dispatch")
        ph.mark("backend_subprocess_compile")
        return atomic_write(staging, backend_compile(payload, runtime, profile))
    request = staging + ".request.json"
    atomic_write(request, payload)
    ph.mark("backend_daemon_setup")
    child = subprocess.Popen([sys.executable, DEMO_FILE, "__backend-daemon"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("backend daemon failed to start")
        ph.mark("backend_dispatch")
        request_line = {"input": request, "output": staging, "runtime": runtime, "profile": profile}
        child.stdin.write(json.dumps(request_line) + "\n")
        child.stdin.flush()
        ph.mark("backend_daemon_compile")
        if child.stdout.readline().strip() != "done" or child.wait() != 0:
            raise RuntimeError(f"backend daemon exited with {child.wait()}")
    finally:
        child.kill() if child.poll() is None else None
        child.wait()
        os.unlink(request)


def tool_fingerprint() -> str:
    """This compiler's own source + the interpreter version: part of every cache key."""
    with open(DEMO_FILE, "rb") as fh:
        return hashlib.sha256(f"{DEMO_VERSION}\0{sys.version}\0".encode() + fh.read()).hexdigest()


def runtime_image(graph: Graph, profile: str) -> str:
    """Build (once per profile, like molt's cargo runtime build) the runtime library the backend links."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(cache_root(), "target")
    path = os.path.join(os.path.abspath(target), "moltdemo-runtime", profile, f"runtime-{tool_fingerprint()[:16]}.bin")
    if not (os.path.exists(path) and os.path.exists(path + ".ir.json")):
        mods = [m for m in map(graph.find, RUNTIME_MODULES) if m and graph.parse(m)]
        functions = lower_all(mods, profile)
        atomic_write(path + ".ir.json", json.dumps(functions, separators=(",", ":")))  # kept for release LTO
        atomic_write(path, backend_compile(json.dumps({"functions": functions}).encode(), "", profile))
    return path


# ------------------------------------------------------------------------------ the build
def atomic_write(path: str, data: bytes | str) -> None:
    """tmp file + os.replace, as molt writes its IR and diagnostics (readers never see half a file)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def cache_root() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("MOLT_CACHE") or "~/.cache/moltdemo"))


def artifacts_root(out_dir: str | None, base: str) -> str:
    """molt: <out-dir>/.molt_build/<base>, else $MOLT_HOME/build/<base> (MOLT_HOME = <cache>/home)."""
    if out_dir:
        return os.path.join(os.path.abspath(out_dir), ".molt_build", base)
    return os.path.join(os.environ.get("MOLT_HOME") or os.path.join(cache_root(), "home"), "build", base)


def acquire_lock(path: str, timeout: float) -> int:
    """Non-blocking flock polled until `timeout`; the fd holds the lock until closed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, deadline = os.open(path, os.O_RDWR | os.O_CREAT, 0o644), time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise TimeoutError("Timed out waiting for build lock") from None
            time.sleep(0.05)


def build(args: argparse.Namespace) -> int:
    """Read molt's env knobs, take the build lock, build; map failures to molt's exit codes."""
    env = os.environ
    diag_on = bool(args.diagnostics or args.diagnostics_file
                   or env.get("MOLT_BUILD_DIAGNOSTICS", "").strip().lower() in ("1", "true", "yes", "on"))
    profile = args.build_profile
    if profile == "release" and env.get("MOLT_RELEASE_CARGO_PROFILE") == "release-fast":
        profile = "release-fast"
    daemon = env.get("MOLT_BACKEND_DAEMON", "1").strip().lower() not in ("0", "off", "false", "no")
    try:
        lock = acquire_lock(os.path.join(cache_root(), "build.lock"), float(env.get("MOLT_BUILD_LOCK_TIMEOUT", "60")))
    except TimeoutError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        ph = Phases()
        front = frontend(args, profile, ph)
        if not backend(args, front, profile, daemon, ph):
            return 1
    except FrontendError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        os.close(lock)
    print(f"Successfully built {front['binary']}", file=sys.stderr)
    if diag_on:
        report(args, front, ph)
    return 0


def frontend(args: argparse.Namespace, profile: str, ph: Phases) -> dict:
    """resolve_entry .. ir_lowering: closure, analysis + cache key, IR (lowered or cached), --emit-ir."""
    entry_path = os.path.abspath(os.path.expanduser(args.entry))
    base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.splitext(os.path.basename(entry_path))[0].split(".")[-1])
    if not os.path.isfile(entry_path):
        raise FrontendError(f"error: entry not found: {entry_path}")
    ph.mark("module_graph")
    graph = Graph(Mod(base, entry_path, "source", project=True))
    reasons = resolve_closure(graph, base)
    mods = [graph.mods[n] for n in sorted(reasons) if n != base] + [graph.mods[base]]
    ph.mark("module_analysis")
    key, timings = hashlib.sha256(f"{tool_fingerprint()}\0{profile}".encode()), {}
    for m in mods:
        t = time.perf_counter()
        if m.kind != "native":
            analyze(graph.parse(m))
        key.update(f"\0{m.name}\0{m.path}\0".encode() + m.source)
        timings[m.name] = {"module": m.name, "path": m.path, "visit_s": time.perf_counter() - t, "lower_s": 0.0}
    key = key.hexdigest()
    cached = os.path.join(cache_root(), key[:2], key)
    hit = not args.no_cache and all(os.path.exists(os.path.join(cached, f)) for f in ("ir.json", "binary"))
    ph.mark("ir_lowering")
    if hit:  # a hit skips lowering and optimisation
        with open(os.path.join(cached, "ir.json"), "rb") as fh:
            ir = json.load(fh)
    else:
        ir = build_ir(mods, profile, timings)
    if args.emit_ir:
        atomic_write(os.path.abspath(args.emit_ir), json.dumps(ir, indent=2) + "\n")
    out_dir = os.path.abspath(args.out_dir) if args.out_dir else artifacts_root(None, base)
    return {"base": base, "graph": graph, "reasons": reasons, "mods": mods, "timings": list(timings.values()),
            "ir": ir, "key": key, "cached": cached, "hit": hit, "binary": os.path.join(out_dir, base),
            "runtime": runtime_image(graph, profile)}  # backend setup (molt: absorbed by ir_lowering)


def backend(args: argparse.Namespace, front: dict, profile: str, daemon: bool, ph: Phases) -> bool:
    """cache_lookup, then runtime_setup (hit) or the backend_* phases (miss)."""
    ph.mark("cache_lookup")
    key, cached, binary = front["key"], front["cached"], front["binary"]
    if args.cache_report:
        state = "disabled" if args.no_cache else f"hit ({key}) [module]" if front["hit"] else f"miss ({key})"
        print(f"Cache: {state}", flush=True)
    if front["hit"]:
        ph.mark("runtime_setup")
        with open(os.path.join(cached, "binary"), "rb") as fh:
            atomic_write(binary, fh.read())
        return True
    t = time.perf_counter()
    ph.mark("backend_codegen", t)  # molt sets it with backend_prepare's timestamp, so it is always 0.0
    ph.mark("backend_prepare", t)
    payload = json.dumps(front["ir"], separators=(",", ":")).encode()
    staging = os.path.join(os.path.dirname(binary), f".{front['base']}.staging")
    try:
        run_backend(payload, staging, front["runtime"], profile, daemon, ph)
    except (RuntimeError, OSError) as exc:
        print(f"error: backend compile failed: {exc}", file=sys.stderr)
        return False
    ph.mark("backend_artifact_stage")
    os.replace(staging, binary)
    if not args.no_cache:
        ph.mark("backend_cache_write")
        atomic_write(os.path.join(cached, "ir.json"), payload)
        with open(binary, "rb") as fh:
            atomic_write(os.path.join(cached, "binary"), fh.read())
    return True


def report(args: argparse.Namespace, front: dict, ph: Phases) -> None:
    """Build the payload, write it (molt: relative paths under the artifacts root), print the block."""
    diag = diagnostics(ph, front)
    path = args.diagnostics_file or os.environ.get("MOLT_BUILD_DIAGNOSTICS_FILE") or None
    if path:
        path = os.path.join(artifacts_root(args.out_dir, front["base"]), os.path.expanduser(path))
        atomic_write(path, json.dumps(diag, indent=2) + "\n")
    print_block(diag, path)


# ------------------------------------------------------------------------------ diagnostics
def phase_attribution(total: float, phases: dict[str, float]) -> dict:
    """molt's _build_phase_attribution for a native build (the wasm keys are 0)."""
    vals = {k: phases.get(k, 0.0) for k in PHASE_ATTR_KEYS}
    front = ("resolve_entry", "module_graph", "module_analysis", "ir_lowering")
    vals["frontend_lowering"] = round(sum(phases.get(k, 0.0) for k in front), 6)
    vals["final_app_codegen"] = vals["backend_codegen"]
    return {"schema_version": 1, "total_sec": total, "phase_sec": vals,
            "phase_share": {k: round(v / total, 8) if total > 0 else 0.0 for k, v in vals.items()},
            "ranked_phases": [k for k, _ in sorted(vals.items(), key=lambda kv: (-kv[1], kv[0]))]}


def diagnostics(ph: Phases, front: dict) -> dict:
    """The MOLT_BUILD_DIAGNOSTICS payload (molt's keys; binary_image_closure is a subset)."""
    end = time.perf_counter()
    base, graph, reasons, mods, timings = (front[k] for k in ("base", "graph", "reasons", "mods", "timings"))
    total, phases, names = round(end - ph.t0, 6), ph.durations(end), sorted(reasons)
    entry = graph.mods[base].path
    image = {"kind": "entry_script", "selector_source": "cli:file", "entry_module": base, "source_path": entry,
             "project_root": os.path.dirname(entry), "module_roots": graph.roots, "root_modules": [base],
             "closure_mode": "reachable_only"}
    having = lambda r: [n for n in names if r in reasons[n]]  # noqa: E731
    closure = {"image": image, "known_modules": names, "direct_call_modules": names, "compile_modules": names,
               "declared_root_modules": [base], "entry_reachable_modules": having("entry_closure"),
               "runtime_support_modules": [], "stdlib_support_modules": [m.name for m in mods if not m.project],
               "package_parent_modules": having("package_parent"), "runtime_import_dispatch_roots": [],
               "stub_parents": [], "namespace_module_names": [], "spawn_enabled": bool(having("spawn_closure")),
               "runtime_import_support": {"needs_generated_importer": False, "needs_runtime_import_support": False},
               "external_native_artifacts": {"artifacts": []}, "native_support_function_roots_by_module": {}}
    op_counts = {f"native_support_{k}": int(k == "iterations") for k in (
        "iterations", "legacy_equivalent_source_parses", "persisted_import_scan_hits", "persisted_import_scan_misses",
        "slice_cache_hits", "slice_cache_misses", "slice_requests", "source_parses", "source_prunes")}
    order_hash = hashlib.sha256("\n".join(m.name for m in mods).encode()).hexdigest()
    for t in timings:
        visit, lower = round(t["visit_s"], 6), round(t["lower_s"], 6)
        t.update(visit_s=visit, lower_s=lower, total_s=round(t["visit_s"] + t["lower_s"], 6), timed_out=False)
    schedule = {"module_order_len": len(mods), "compile_order_len": len(mods), "module_order_hash": order_hash,
                "compile_order_hash": order_hash}
    frontend = {"schema_version": 1, "module_schedule": schedule,
                "lowering": {"target_python": "py{}{}".format(*sys.version_info[:2]), "module_chunking": True,
                             "module_chunk_max_ops": CHUNK_MAX_OPS, "compile_equals_known": True}}
    return {"enabled": True, "total_sec": total, "phase_sec": phases, "module_count": len(names),
            "module_graph_operation_counts": op_counts,
            "module_reason_summary": dict(sorted(Counter(r for rs in reasons.values() for r in rs).items())),
            "module_reasons": reasons, "binary_image_closure": closure, "binary_image": image,
            "known_module_count": len(names), "compile_module_count": len(mods),
            "binary_image_analysis": {"schema_version": 1, "frontend": frontend,
                                      "backend_ir": {"schema_version": 1, "backend_ir": ir_stats(front["ir"])}},
            "frontend_module_timings": timings,
            "frontend_module_timings_top": sorted(timings, key=lambda t: (-t["total_s"], t["module"]))[:20],
            "frontend_parallel": {"enabled": False, "workers": 1, "mode": "serial", "reason": "demo_serial",
                                  "pipeline_stage_ms": {}},
            "phase_attribution": phase_attribution(total, phases)}


def print_block(p: dict, path: str | None) -> None:
    """The stderr `Build diagnostics:` block, in molt's order and number format."""
    lines = ["Build diagnostics:", f"- total_sec: {p['total_sec']:.6f}", f"- modules: {p['module_count']}",
             f"- known_modules: {p['known_module_count']}", f"- compile_modules: {p['compile_module_count']}"]
    lines += [f"- phase.{k}: {v:.6f}s" for k, v in sorted(p["phase_sec"].items())]
    lines += [f"- reason.{k}: {v}" for k, v in sorted(p["module_reason_summary"].items())]
    lines += [f"- frontend.hotspot.{i}: {t['module']} total_s={t['total_s']:.6f} visit_s={t['visit_s']:.6f} "
              f"lower_s={t['lower_s']:.6f}" for i, t in enumerate(p["frontend_module_timings_top"][:10], 1)]
    print("\n".join(lines + ([f"- wrote: {path}"] if path else [])), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """CLI entry; `__backend-daemon` is the internal child mode of the backend step."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__backend-daemon"]:
        return backend_daemon()
    ap = argparse.ArgumentParser(prog="moltdemo", description="DEMO stand-in for `molt build` (not molt).")
    b = ap.add_subparsers(dest="cmd", required=True).add_parser("build", help="compile ENTRY.py")
    b.add_argument("entry")
    b.add_argument("--build-profile", choices=("dev", "release"), default="dev")
    b.add_argument("--no-cache", action="store_true", help="no cache lookup or write")
    b.add_argument("--cache-report", action="store_true", help="print `Cache: hit|miss (<key>)` on stdout")
    b.add_argument("--emit-ir", metavar="PATH", help="write the IR JSON (relative: to the current directory)")
    b.add_argument("--diagnostics", action="store_true")
    b.add_argument("--diagnostics-file", metavar="PATH", help="relative: to the build artifacts root, as in molt")
    b.add_argument("--out-dir", metavar="DIR")
    return build(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
