#!/usr/bin/env python3
"""moltdemo: a small DEMO compiler standing in for molt's `molt build` (not molt).

It resolves a script's import closure over the running interpreter's real stdlib,
lowers every module's AST to molt-shaped IR ops, optionally optimises them, and
writes molt's `--emit-ir` / `MOLT_BUILD_DIAGNOSTICS` formats so molt-budget can be
tried without Rust. Stdlib only; see README.md for the rules and simplifications.
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
CHUNK_MAX_OPS = 1400
CORE_REQUIRED = ("builtins", "sys")
CORE_CLOSURE = ("__future__", "_intrinsics", "_sitebuiltins", "builtins", "sys")
SPAWN_PKG, SPAWN_ROOTS = "multiprocessing", ("multiprocessing", "multiprocessing.spawn")
TRUTHY = {"1", "true", "yes", "on"}
CONST_KINDS = {"const", "const_str", "const_none", "const_bool", "const_float", "const_bytes", "const_ellipsis"}
PURE_KINDS = CONST_KINDS | {"load_var", "tuple_new", "func_new"}
NO_RAISE = CONST_KINDS | {"load_var", "label", "line", "check_exception", "trace_enter_slot", "tuple_new"}
LABEL_REFS = {"label", "loop_start", "loop_end", "jump", "try_start", "try_end", "loop_break_if_done", "loop_break_if_false"}
BLOCK_KINDS = LABEL_REFS | {"if", "else", "end_if"}
PHASE_ATTR_KEYS = ("backend_codegen", "fail_closed_validation", "final_app_codegen", "frontend_lowering",
                   "ir_lowering", "module_analysis", "module_graph", "resolve_entry", "seal",
                   "split_runtime_processing", "wasm_link_core", "wasm_link_total", "wasm_strip")
INTRINSICS_SRC = '''"""Stand-in for molt's _intrinsics: runtime intrinsic lookup."""
_REGISTRY = {}
def _lookup(name, namespace=None):
    table = _REGISTRY if namespace is None else namespace
    if name in table:
        return table[name]
    return None
def require_intrinsic(name, namespace=None):
    value = _lookup(name, namespace)
    if value is None:
        raise RuntimeError(f"missing intrinsic {name!r}")
    return value
def load_intrinsic(name, namespace=None):
    try:
        return require_intrinsic(name, namespace)
    except RuntimeError:
        return None
'''


class FrontendError(Exception):
    """A user-facing compile error (exit 2, no IR, no diagnostics, like molt)."""


@dataclass
class Mod:
    """One module of the closure; `tree` is None for native (no-source) modules."""
    name: str
    path: str
    kind: str  # "source" | "native" | "standin"
    search: list[str] | None = None
    project: bool = False
    source: bytes = b""
    tree: ast.Module | None = None


@dataclass
class Phases:
    """molt's phase markers: start times set once; a phase lasts until the next marker."""
    t0: float = field(default_factory=time.perf_counter)
    starts: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, at: float | None = None) -> None:
        self.starts.setdefault(name, time.perf_counter() if at is None else at)

    def durations(self, end: float) -> dict[str, float]:
        items = sorted(self.starts.items(), key=lambda kv: kv[1])  # stable: ties keep insertion order
        ends = [t for _, t in items[1:]] + [end]
        return {n: round(e - t, 6) for (n, t), e in zip(items, ends)}


# ----------------------------------------------------------------------------- module graph
class Graph:
    """Finds modules (entry dir first, then the stdlib only) and their import edges."""

    def __init__(self, entry: Mod) -> None:
        paths = sysconfig.get_paths()
        self.stdlib = sorted({os.path.abspath(paths["stdlib"]), os.path.abspath(paths["platstdlib"])})
        self.roots = [os.path.dirname(entry.path)] + self.stdlib + [os.path.join(d, "lib-dynload") for d in self.stdlib]
        self.mods: dict[str, Mod | None] = {entry.name: entry}
        self.parses = 0

    def find(self, name: str) -> Mod | None:
        """Locate `name` without importing it (PathFinder, so parents are never executed)."""
        if name in self.mods:
            return self.mods[name]
        mod, parent = None, name.rpartition(".")[0]
        if name == "_intrinsics":
            mod = Mod(name, DEMO_FILE, "standin", source=INTRINSICS_SRC.encode())
        elif name in sys.builtin_module_names:
            mod = Mod(name, DEMO_FILE, "native")
        else:
            path = self.roots
            if parent:
                pm = self.find(parent)
                path = pm.search if pm else None
            spec = PathFinder.find_spec(name, path) if path else None
            origin = spec.origin if spec else None
            if origin and origin.endswith(".py"):
                origin = os.path.abspath(origin)
                mod = Mod(name, origin, "source", list(spec.submodule_search_locations or []) or None,
                          project=not any(origin.startswith(d + os.sep) for d in self.stdlib))
            elif origin and spec.has_location:
                mod = Mod(name, os.path.abspath(origin), "native")
        self.mods[name] = mod
        return mod

    def parse(self, mod: Mod) -> ast.Module | None:
        """Read and parse a module once; a SyntaxError is a frontend error."""
        if mod.tree is None and mod.kind != "native":
            if not mod.source:
                with open(mod.path, "rb") as fh:
                    mod.source = fh.read()
            try:
                mod.tree = ast.parse(mod.source, filename=mod.path)
            except SyntaxError as exc:
                raise FrontendError(f"error: {mod.path}:{exc.lineno}: SyntaxError: {exc.msg}") from None
            self.parses += 1
        return mod.tree

    def imports(self, mod: Mod) -> list[tuple[str, bool]]:
        """(target, inside_a_function) for every import; `from p import x` also tries p.x."""
        tree, out = self.parse(mod), []
        pkg = mod.name if mod.search else mod.name.rpartition(".")[0]
        def walk(node: ast.AST, in_func: bool) -> None:
            for ch in ast.iter_child_nodes(node):
                f = in_func or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(ch, ast.Import):
                    out.extend((a.name, f) for a in ch.names)
                elif isinstance(ch, ast.ImportFrom):
                    base = pkg.split(".")[: len(pkg.split(".")) - ch.level + 1] if ch.level else []
                    target = ".".join(base + ([ch.module] if ch.module else []))
                    if target:
                        out.append((target, f))
                        out.extend((f"{target}.{a.name}", f) for a in ch.names if a.name != "*")
                walk(ch, f)
        walk(tree, False)
        return out

    def closure(self, roots: list[str], barrier: str | None = None) -> tuple[dict[str, bool], set[str]]:
        """Module -> expanded?, plus modules reached by an edge/root (not only as package parents).

        Followed: every import of project modules, every import between modules of one
        top-level stdlib package, and module-level imports across stdlib packages; a module
        reached across a stdlib package boundary is compiled but its imports are not followed.
        """
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
            if eff:
                top = name.split(".")[0]
                for target, in_func in reversed(self.imports(mod)):
                    same = target.split(".")[0] == top
                    if mod.project or same or not in_func:
                        work.append((target, mod.project or same, True))
        return state, reached


def resolve_closure(graph: Graph, entry: str) -> dict[str, list[str]]:
    """module -> sorted reasons, using molt's reason names."""
    reasons: dict[str, set[str]] = {}
    def add(names, reason):
        for n in names:
            reasons.setdefault(n, set()).add(reason)
    core, _ = graph.closure(list(CORE_CLOSURE))
    add(core, "core_closure")
    add(CORE_REQUIRED, "core_required")
    ent, ent_reached = graph.closure([entry], barrier=SPAWN_PKG)
    add(ent_reached, "entry_closure")
    add([entry], "entry_root")
    everything = set(core) | set(ent)
    spawn_roots = sorted(set(SPAWN_ROOTS) | {n for n in ent if n.split(".")[0] == SPAWN_PKG})
    if len(spawn_roots) > len(SPAWN_ROOTS) or SPAWN_PKG in ent:
        spawn, sp_reached = graph.closure(spawn_roots)
        add(sp_reached, "spawn_closure")
        everything |= set(spawn)
    add([n for n in everything if n not in reasons], "package_parent")
    return {n: sorted(reasons[n]) for n in sorted(reasons)}


# ----------------------------------------------------------------------------- analysis
NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda,
          ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def scope_names(node: ast.AST) -> tuple[set[str], set[str], set[str]]:
    """(stored, declared global/nonlocal, names loaded by nested scopes) for one scope."""
    stored, declared, nested_loads = set(), set(), set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = node.args
        stored |= {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
    body = node.body if isinstance(node.body, list) else [node.body]
    todo = list(body) if not isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)) \
        else [g.target for g in node.generators]
    while todo:
        n = todo.pop()
        if isinstance(n, NESTED):
            if getattr(n, "name", None):
                stored.add(n.name)
            nested_loads |= {x.id for x in ast.walk(n) if isinstance(x, ast.Name)}
            continue
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            stored.add(n.id)
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            declared |= set(n.names)
        elif isinstance(n, ast.alias):
            stored.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            stored.add(n.name)
        todo.extend(ast.iter_child_nodes(n))
    return stored - declared, declared, nested_loads


def analyze(mod: Mod) -> dict[int, tuple[set[str], set[str]]]:
    """Scope table for every function-like node: id(node) -> (locals, cells)."""
    table = {}
    for n in ast.walk(mod.tree):
        if isinstance(n, NESTED) and not isinstance(n, ast.ClassDef):
            loc, _, nested = scope_names(n)
            table[id(n)] = (loc, loc & nested)
    return table


# ----------------------------------------------------------------------------- lowering
def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class Fn:
    """One IR function under construction."""

    def __init__(self, name: str, params: list[str], ctx: str, scope=None, outer=()):
        self.name, self.params, self.ctx, self.ops = name, params, ctx, []
        self.locals, self.cells = scope or (set(), set())
        self.outer, self.labels, self.line = outer, 0, None

    def to_json(self, path: str) -> dict:
        f = {"name": self.name, "params": self.params, "ops": self.ops}
        if self.ctx:
            f["execution_context"] = self.ctx
        if self.name.startswith("molt_init_"):
            f["app_callable_bindings"] = []
        if self.params:
            f["param_types"] = ["i64"] * len(self.params)
        f["source_file"] = path
        return f


class Lowerer:
    """Lowers one module's AST into molt-shaped functions (one per def/lambda/comprehension)."""

    def __init__(self, mod: Mod, scopes: dict) -> None:
        self.mod, self.scopes, self.fns, self.nvals = mod, scopes, [], 0
        self.sym = mod.name.replace(".", "_")
        self.names: set[str] = set()
        self.fn: Fn = Fn("", [], "")

    def uniq(self, base: str) -> str:
        name, i = f"{self.sym}__{base}", 1
        while name in self.names:
            i, name = i + 1, f"{self.sym}__{base}_{i}"
        self.names.add(name)
        return name

    def op(self, kind: str, args=None, out=True, exc=False, **kw) -> str:
        o = {"kind": kind, **kw}
        v = ""
        if out:
            self.nvals += 1
            v = o["out"] = f"v{self.nvals}"
        if args is not None:
            o["args"] = list(args)
        if self.fn.line is not None:
            o["source_line"] = self.fn.line
        self.fn.ops.append(o)
        if exc:
            self.fn.ops.append({"kind": "check_exception", "value": 1, **({"source_line": self.fn.line} if self.fn.line else {})})
        return v

    def label(self) -> int:
        self.fn.labels += 1
        return self.fn.labels

    def cstr(self, s: str) -> str:
        return self.op("const_str", s_value=s)

    # -- module / functions ------------------------------------------------------------
    def lower_module(self) -> list[dict]:
        init = Fn(f"molt_init_{self.sym}", [], "local")
        if self.mod.tree is not None:
            self.fn = Fn(self.uniq("__molt_globals_builtin__"), [], "")
            self.fn.ops.append({"kind": "exception_stack_enter", "out": "v0"})
            m = self.op("module_cache_get", [self.cstr(self.mod.name)], exc=True)
            self.op("ret", [self.op("module_get_attr", [m, self.cstr("__dict__")], exc=True)], out=False)
            self.op("label", out=False, value=self.label())
            self.op("ret_void", out=False)
            self.fns.append(self.fn)
            chunks = self.lower_chunks(self.mod.tree.body)
        else:
            chunks = []
        self.fn = init
        name = self.cstr(self.mod.name)
        m = self.op("module_new", [name], exc=True)
        self.op("module_cache_set", [name, m], exc=True)
        attrs = {"__name__": self.mod.name, "__file__": self.mod.path, "__package__": self.mod.name.rpartition(".")[0]}
        for attr, val in attrs.items():
            self.op("module_set_attr", [m, self.cstr(attr), self.cstr(val)], exc=True)
        if self.mod.kind == "native":
            self.op("module_bind_native", [m], out=False, exc=True, s_value=self.mod.name)
        for ch in chunks:
            self.op("call", [m], exc=True, s_value=ch)
        self.op("ret_void", out=False)
        self.fns.append(init)
        return sorted((f.to_json(self.mod.path) for f in self.fns), key=lambda f: f["name"])

    def lower_chunks(self, body: list[ast.stmt]) -> list[str]:
        names, i = [], 0
        while i < len(body):
            self.fn = Fn(self.uniq(f"molt_module_chunk_{len(names) + 1}"), ["__molt_module_obj__"], "inherited")
            while i < len(body) and len(self.fn.ops) < CHUNK_MAX_OPS:
                self.stmt(body[i])
                i += 1
            self.op("ret_void", out=False)
            self.fns.append(self.fn)
            names.append(self.fn.name)
        return names

    def function(self, node, base: str, body: list, ret_expr: bool = False) -> str:
        """Lower a def/lambda/comprehension into its own Fn; returns the function value."""
        a = getattr(node, "args", None)
        params = [x.arg for x in (a.posonlyargs + a.args + ([a.vararg] if a.vararg else []) + a.kwonlyargs
                                  + ([a.kwarg] if a.kwarg else []))] if a else [".0"]
        defaults = [self.expr(d) for d in (a.defaults + [d for d in a.kw_defaults if d]) if a] if a else []
        outer = self.fn
        chain = outer.outer + ((outer.locals,) if outer.ctx == "local" else ())
        self.fn = Fn(self.uniq(base), params, "local", self.scopes.get(id(node)), chain)
        self.fn.line = getattr(node, "lineno", None)
        self.op("trace_enter_slot", out=False, value=0)
        for p in params:
            self.op("store_var", [p], out=False, exc=True, var=p)
        if ret_expr:
            self.op("ret", [self.expr(body[0])], out=False, exc=True)
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            self.comprehension(node)
        else:
            self.block(body)
        self.op("trace_exit", out=False)
        self.op("ret", [self.op("const_none")], out=False)
        done, self.fn = self.fn, outer
        self.fns.append(done)
        return self.op("func_new", defaults, exc=True, s_value=done.name, value=len(params))

    def comprehension(self, node) -> None:
        acc = self.op(snake(type(node).__name__).replace("_comp", "") + "_new" if not isinstance(node, ast.GeneratorExp) else "gen_new", [])
        self.loops(node.generators, 0, node, acc)
        self.op("ret", [acc], out=False)

    def loops(self, gens, i, node, acc) -> None:
        if i == len(gens):
            if isinstance(node, ast.DictComp):
                self.op("dict_set", [acc, self.expr(node.key), self.expr(node.value)], out=False, exc=True)
            else:
                self.op("yield" if isinstance(node, ast.GeneratorExp) else "list_append", [acc, self.expr(node.elt)], exc=True)
            return
        g = gens[i]
        self.loop(g.iter if i else None, g.target, lambda: self.guarded(g.ifs, lambda: self.loops(gens, i + 1, node, acc)))

    def guarded(self, tests, then) -> None:
        for t in tests:
            self.op("if", [self.expr(t)], out=False)
        then()
        for _ in tests:
            self.op("end_if", out=False)

    def loop(self, iter_node, target, body) -> None:
        src = self.expr(iter_node) if iter_node is not None else self.op("load_var", [".0"], var=".0")
        it = self.op("iter_new", [src], exc=True)
        top, end = self.label(), self.label()
        self.op("loop_start", out=False, value=top)
        self.op("label", out=False, value=top)
        item = self.op("iter_next", [it], exc=True)
        self.op("loop_break_if_done", [item], out=False, value=end)
        self.store(target, item)
        body()
        self.op("jump", out=False, value=top)
        self.op("label", out=False, value=end)
        self.op("loop_end", out=False, value=top)

    # -- statements ---------------------------------------------------------------------
    def block(self, body: list[ast.stmt]) -> None:
        for s in body:
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        self.fn.line = s.lineno
        self.op("line", out=False, value=s.lineno, col_offset=s.col_offset, end_col_offset=s.end_col_offset)
        getattr(self, "s_" + type(s).__name__, self.s_generic)(s)

    def s_generic(self, s: ast.AST) -> None:
        for ch in ast.iter_child_nodes(s):
            if isinstance(ch, ast.expr):
                self.expr(ch)
            elif isinstance(ch, ast.stmt):
                self.stmt(ch)
            elif isinstance(ch, (ast.match_case, ast.ExceptHandler)):
                self.block(ch.body)

    def s_Expr(self, s) -> None:
        self.expr(s.value)

    def s_Assign(self, s) -> None:
        v = self.expr(s.value)
        for t in s.targets:
            self.store(t, v)

    def s_AugAssign(self, s) -> None:
        cur = self.expr(ast.Name(s.target.id, ast.Load()) if isinstance(s.target, ast.Name) else s.target)
        self.store(s.target, self.op("inplace_" + snake(type(s.op).__name__), [cur, self.expr(s.value)], exc=True))

    def s_AnnAssign(self, s) -> None:
        if s.value is not None:
            self.store(s.target, self.expr(s.value))

    def s_Return(self, s) -> None:
        self.op("trace_exit", out=False)
        self.op("ret", [self.expr(s.value) if s.value else self.op("const_none")], out=False)

    def s_If(self, s) -> None:
        self.op("if", [self.op("is_truthy", [self.expr(s.test)], exc=True)], out=False)
        self.block(s.body)
        if s.orelse:
            self.op("else", out=False)
            self.block(s.orelse)
        self.op("end_if", out=False)

    def s_While(self, s) -> None:
        top, end = self.label(), self.label()
        self.op("loop_start", out=False, value=top)
        self.op("label", out=False, value=top)
        self.op("loop_break_if_false", [self.op("is_truthy", [self.expr(s.test)], exc=True)], out=False, value=end)
        self.block(s.body)
        self.op("jump", out=False, value=top)
        self.op("label", out=False, value=end)
        self.op("loop_end", out=False, value=top)
        self.block(s.orelse)

    def s_For(self, s) -> None:
        self.loop(s.iter, s.target, lambda: self.block(s.body))
        self.block(s.orelse)

    s_AsyncFor = s_For

    def s_Try(self, s) -> None:
        handler, done = self.label(), self.label()
        self.op("try_start", out=False, value=handler)
        self.block(s.body)
        self.op("try_end", out=False, value=handler)
        self.block(s.orelse)
        self.op("jump", out=False, value=done)
        self.op("label", out=False, value=handler)
        exc = self.op("exception_last")
        for h in s.handlers:
            match = self.op("exception_match", [exc, self.expr(h.type)], exc=True) if h.type else self.op("const_bool", value=1)
            self.op("if", [match], out=False)
            if h.name:
                self.store(ast.Name(h.name, ast.Store()), exc)
            self.op("exception_clear", out=False)
            self.block(h.body)
            self.op("end_if", out=False)
        self.op("label", out=False, value=done)
        self.block(s.finalbody)
        self.op("exception_reraise_pending", out=False, exc=True)

    s_TryStar = s_Try

    def s_With(self, s) -> None:
        exits = []
        for item in s.items:
            mgr = self.expr(item.context_expr)
            val = self.op("context_enter", [mgr], exc=True)
            if item.optional_vars is not None:
                self.store(item.optional_vars, val)
            exits.append(mgr)
        self.block(s.body)
        for mgr in reversed(exits):
            self.op("context_exit", [mgr], exc=True)

    s_AsyncWith = s_With

    def s_Raise(self, s) -> None:
        args = [self.expr(x) for x in (s.exc, s.cause) if x is not None]
        self.op("raise", args, out=False, exc=True)

    def s_Assert(self, s) -> None:
        self.op("if", [self.op("not", [self.expr(s.test)], exc=True)], out=False)
        self.op("raise", [self.op("builtin_get", s_value="AssertionError")] + ([self.expr(s.msg)] if s.msg else []), out=False, exc=True)
        self.op("end_if", out=False)

    def s_Delete(self, s) -> None:
        for t in s.targets:
            if isinstance(t, ast.Name):
                self.op("del_var", out=False, exc=True, var=t.id)
            elif isinstance(t, ast.Attribute):
                self.op("del_attr", [self.expr(t.value)], out=False, exc=True, s_value=t.attr)
            elif isinstance(t, ast.Subscript):
                self.op("del_index", [self.expr(t.value), self.expr(t.slice)], out=False, exc=True)
        self.op("del_boundary", out=False)

    def s_Import(self, s) -> None:
        for a in s.names:
            m = self.op("module_import", [self.cstr(a.name)], exc=True, s_value=a.name)
            if a.asname:
                m = self.op("module_import", [self.cstr(a.name)], exc=True, s_value=a.name, value=1)
            self.store(ast.Name(a.asname or a.name.split(".")[0], ast.Store()), m)

    def s_ImportFrom(self, s) -> None:
        name = "." * s.level + (s.module or "")
        m = self.op("module_import", [self.cstr(name)], exc=True, s_value=name, value=s.level)
        for a in s.names:
            if a.name == "*":
                self.op("module_import_star", [m], out=False, exc=True)
            else:
                self.store(ast.Name(a.asname or a.name, ast.Store()), self.op("module_import_from", [m, self.cstr(a.name)], exc=True))

    def s_FunctionDef(self, s) -> None:
        decorators = [self.expr(d) for d in s.decorator_list]
        f = self.function(s, s.name, s.body)
        for d in reversed(decorators):
            f = self.op("call_bind", [d, f], exc=True)
        self.store(ast.Name(s.name, ast.Store()), f)

    s_AsyncFunctionDef = s_FunctionDef

    def s_ClassDef(self, s) -> None:
        bases = [self.expr(b) for b in s.bases] + [self.expr(k.value) for k in s.keywords]
        cls = self.op("class_new", [self.cstr(s.name)] + bases, exc=True, s_value=s.name)
        saved, self.sym = self.sym, f"{self.sym}__{s.name}"
        for st in s.body:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.fn.line = st.lineno
                f = self.function(st, st.name, st.body)
                self.op("class_set_attr", [cls, self.cstr(st.name), f], out=False, exc=True, **{"class": s.name})
            else:
                self.stmt(st)
        self.sym = saved
        self.store(ast.Name(s.name, ast.Store()), cls)

    def s_Break(self, s) -> None:
        self.op("loop_break", out=False)

    def s_Continue(self, s) -> None:
        self.op("loop_continue", out=False)

    def s_Pass(self, s) -> None:
        pass

    s_Global = s_Nonlocal = s_Pass

    # -- stores / expressions -------------------------------------------------------------
    def store(self, t: ast.AST, v: str) -> None:
        if isinstance(t, ast.Name):
            if self.fn.ctx != "local":
                self.op("module_set_attr", ["__molt_module_obj__", self.cstr(t.id), v], out=False, exc=True)
            elif t.id in self.fn.cells:
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
                self.store(e.value if isinstance(e, ast.Starred) else e, self.op("index", [parts, self.op("const", value=i)], exc=True))
        elif isinstance(t, ast.Starred):
            self.store(t.value, v)

    def expr(self, n: ast.expr) -> str:
        return getattr(self, "x_" + type(n).__name__, self.x_generic)(n)

    def x_generic(self, n) -> str:
        args = [self.expr(c) for c in ast.iter_child_nodes(n) if isinstance(c, ast.expr)]
        return self.op(snake(type(n).__name__), args, exc=True)

    def x_Constant(self, n) -> str:
        v = n.value
        if v is None:
            return self.op("const_none")
        if isinstance(v, bool):
            return self.op("const_bool", value=int(v))
        if isinstance(v, int):
            return self.op("const", value=v) if abs(v) < 2 ** 63 else self.op("const_bigint", s_value=str(v))
        if isinstance(v, float):
            return self.op("const_float", f_value=v if v == v and abs(v) != float("inf") else repr(v))
        if isinstance(v, str):
            return self.cstr(v)
        if isinstance(v, bytes):
            return self.op("const_bytes", s_value=v.decode("latin-1"))
        return self.op("const_ellipsis" if v is Ellipsis else "const_complex", s_value=repr(v))

    def x_Name(self, n) -> str:
        fn = self.fn
        if fn.ctx == "local" and n.id in fn.locals:
            if n.id in fn.cells:
                return self.op("closure_load", exc=True, s_value=n.id)
            return self.op("load_var", [n.id], var=n.id)
        if fn.ctx == "local" and any(n.id in s for s in fn.outer):
            return self.op("closure_load", exc=True, s_value=n.id)
        return self.op("module_get_global", ["__molt_module_obj__", self.cstr(n.id)], exc=True)

    def x_Attribute(self, n) -> str:
        return self.op("get_attr", [self.expr(n.value)], exc=True, s_value=n.attr)

    def x_Call(self, n) -> str:
        if isinstance(n.func, ast.Name) and n.func.id == "print" and len(n.args) == 1 and not n.keywords:
            self.op("print", [self.expr(n.args[0])], out=False, exc=True)
            return self.op("const_none")
        func = self.expr(n.func)
        ca = self.op("callargs_new", [func])
        for a in n.args:
            kind = "callargs_push_star" if isinstance(a, ast.Starred) else "callargs_push_pos"
            self.op(kind, [ca, self.expr(a.value if isinstance(a, ast.Starred) else a)], out=False, exc=True)
        for k in n.keywords:
            key = self.cstr(k.arg) if k.arg else self.op("const_none")
            self.op("callargs_push_kw", [ca, key, self.expr(k.value)], out=False, exc=True)
        return self.op("call_bind", [func, ca], exc=True)

    def x_BinOp(self, n) -> str:
        return self.op(snake(type(n.op).__name__), [self.expr(n.left), self.expr(n.right)], exc=True)

    def x_UnaryOp(self, n) -> str:
        return self.op(snake(type(n.op).__name__), [self.expr(n.operand)], exc=True)

    def x_Compare(self, n) -> str:
        left, results = self.expr(n.left), []
        for cmp, right in zip(n.ops, n.comparators):
            r = self.expr(right)
            results.append(self.op(snake(type(cmp).__name__), [left, r], exc=True))
            left = r
        return results[0] if len(results) == 1 else self.op("bool_and_all", results)

    def x_BoolOp(self, n) -> str:
        tmp = f"__molt_tmp_{self.nvals}"
        self.op("store_var", [self.expr(n.values[0])], out=False, var=tmp)
        for v in n.values[1:]:
            truth = self.op("is_truthy", [self.op("load_var", [tmp], var=tmp)], exc=True)
            self.op("if", [truth if isinstance(n.op, ast.And) else self.op("not", [truth])], out=False)
            self.op("store_var", [self.expr(v)], out=False, var=tmp)
            self.op("end_if", out=False)
        return self.op("load_var", [tmp], var=tmp)

    def x_IfExp(self, n) -> str:
        tmp = f"__molt_tmp_{self.nvals}"
        self.op("if", [self.op("is_truthy", [self.expr(n.test)], exc=True)], out=False)
        self.op("store_var", [self.expr(n.body)], out=False, var=tmp)
        self.op("else", out=False)
        self.op("store_var", [self.expr(n.orelse)], out=False, var=tmp)
        self.op("end_if", out=False)
        return self.op("load_var", [tmp], var=tmp)

    def x_Tuple(self, n) -> str:
        return self.op("tuple_new", [self.expr(e) for e in n.elts], type_hint="tuple")

    def x_List(self, n) -> str:
        return self.op("list_new", [self.expr(e) for e in n.elts], exc=True, container_type="list")

    def x_Set(self, n) -> str:
        return self.op("set_new", [self.expr(e) for e in n.elts], exc=True, container_type="set")

    def x_Dict(self, n) -> str:
        args = [x for k, v in zip(n.keys, n.values) for x in (self.expr(k) if k else self.op("const_none"), self.expr(v))]
        return self.op("dict_new", args, exc=True, container_type="dict")

    def x_Subscript(self, n) -> str:
        return self.op("index", [self.expr(n.value), self.expr(n.slice)], exc=True)

    def x_JoinedStr(self, n) -> str:
        parts = [self.op("string_format", [self.expr(v.value)], exc=True, value=v.conversion)
                 if isinstance(v, ast.FormattedValue) else self.expr(v) for v in n.values]
        return self.op("string_join", parts, exc=True)

    def x_NamedExpr(self, n) -> str:
        v = self.expr(n.value)
        self.store(n.target, v)
        return v

    def x_Lambda(self, n) -> str:
        return self.function(n, "lambda", [n.body], ret_expr=True)

    def x_ListComp(self, n) -> str:
        f = self.function(n, snake(type(n).__name__).replace("_", ""), [])
        return self.op("call_bind", [f, self.op("iter_new", [self.expr(n.generators[0].iter)], exc=True)], exc=True)

    x_SetComp = x_DictComp = x_GeneratorExp = x_ListComp


# ----------------------------------------------------------------------------- passes
def verify(fn: dict) -> int:
    """Every `vN` argument must be defined earlier in the function (molt's verifier idea)."""
    defined, bad = set(), 0
    for o in fn["ops"]:
        bad += sum(1 for a in o.get("args", ()) if a[:1] == "v" and a[1:].isdigit() and a not in defined)
        if "out" in o:
            defined.add(o["out"])
    if bad:
        raise RuntimeError(f"verifier: {bad} undefined value(s) in {fn['name']}")
    return len(defined)


def renumber_labels(fn: dict) -> None:
    """Label ids renumbered per function in first-seen order (as molt does)."""
    ids: dict[int, int] = {}
    for o in fn["ops"]:
        if o["kind"] in LABEL_REFS:
            o["value"] = ids.setdefault(o.get("value", 0), len(ids) + 1)


def pass_cse(ops: list[dict]) -> list[dict]:
    """Block-local constant CSE: reuse the first identical constant, rewrite its uses."""
    alias, seen, out = {}, {}, []
    for o in ops:
        if "args" in o and any(a in alias for a in o["args"]):
            o["args"] = [alias.get(a, a) for a in o["args"]]
        if o["kind"] in BLOCK_KINDS:
            seen = {}
        if o["kind"] in CONST_KINDS and "out" in o:
            key = (o["kind"], repr(o.get("value")), o.get("s_value"), repr(o.get("f_value")))
            if key in seen:
                alias[o["out"]] = seen[key]
                continue
            seen[key] = o["out"]
        out.append(o)
    return out


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
    """Remove store_var of locals that are never loaded in the function."""
    loaded = {o.get("var") for o in ops if o["kind"] in ("load_var", "del_var")}
    return [o for o in ops if not (o["kind"] == "store_var" and o.get("var") not in loaded)]


def optimise(functions: list[dict], profile: str, cargo_profile: str) -> None:
    """dev: verify only. release: CSE/DCE/check/dead-store rounds to a fixpoint, verifying each."""
    fast = cargo_profile == "release-fast"
    passes = [pass_cse, pass_dce, pass_checks] + ([] if fast else [pass_dead_stores, pass_dce])
    for fn in functions:
        renumber_labels(fn)
        verify(fn)
        for _ in range(0 if profile == "dev" else 1 if fast else 4):
            before = len(fn["ops"])
            for p in passes:
                fn["ops"] = p(fn["ops"])
                verify(fn)
            if len(fn["ops"]) == before:
                break


# ----------------------------------------------------------------------------- IR assembly
def module_registry(mods: list[Mod]) -> dict:
    """molt's module registry: a binary table (names, paths, init slots) as an int list."""
    strings, rows = bytearray(), []
    for i, m in enumerate(mods):
        n, p = m.name.encode(), m.path.encode()
        rows.append((len(strings), len(n), len(strings) + len(n), len(p), i))
        strings += n + p
    table = b"".join(b"".join(x.to_bytes(4, "little") for x in r) + b"\xff" * 8 for r in rows)
    digest = hashlib.sha256(table + bytes(strings)).hexdigest()
    head = b"MOLTMOD2" + (2).to_bytes(4, "little") + len(mods).to_bytes(4, "little") + bytes.fromhex(digest)[:16]
    relocs = [[len(head) + 28 * i + 20, f"molt_init_{m.name.replace('.', '_')}"] for i, m in enumerate(mods)]
    return {"schema": 2, "registry_digest": digest, "blob": list(head + table + bytes(strings)),
            "relocs": relocs, "init_symbols": sorted({r[1] for r in relocs}),
            "init_rows": [[i + 1, r[1]] for i, r in enumerate(relocs)]}


def molt_main(order: list[Mod]) -> dict:
    ops = [{"kind": "call", "s_value": "molt_runtime_init", "args": [], "out": "v0"}]
    for i, m in enumerate(order, 1):
        ops += [{"kind": "call", "s_value": f"molt_init_{m.name.replace('.', '_')}", "args": [], "out": f"v{i}"},
                {"kind": "check_exception", "value": 1}]
    return {"name": "molt_main", "params": [], "ops": ops + [{"kind": "ret_void"}]}


def ir_stats(ir: dict) -> dict:
    """binary_image_analysis.backend_ir.backend_ir, computed from the IR itself."""
    kinds = Counter(o["kind"] for f in ir["functions"] for o in f["ops"])
    per_fn = sorted(((len(f["ops"]), f["name"], sum(1 for o in f["ops"] if "source_line" in o)) for f in ir["functions"]),
                    key=lambda t: (-t[0], t[1]))
    names = "\n".join(f["name"] for f in ir["functions"]).encode()
    return {"function_count": len(ir["functions"]), "op_count": sum(kinds.values()), "call_op_count": kinds["call"],
            "op_kind_count": len(kinds),
            "op_kind_top": [{"kind": k, "count": c} for k, c in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:20]],
            "top_functions_by_ops": [{"function": n, "ops": c, "source_site_ops": s} for c, n, s in per_fn[:10]],
            "function_order_hash": hashlib.sha256(names).hexdigest(),
            "profile_attached": False, "runtime_feedback_attached": False}


def backend_compile(payload: bytes) -> bytes:
    """The demo 'codegen': re-encode every op into a compact listing and compress it."""
    ir = json.loads(payload)
    kinds: dict[str, int] = {}
    lines = []
    for f in ir["functions"]:
        lines.append(f"fn {f['name']}({','.join(f['params'])})")
        for o in f["ops"]:
            k = kinds.setdefault(o["kind"], len(kinds))
            lines.append("\x1f".join([str(k), o.get("out", "")] + [str(v) for key, v in o.items() if key not in ("kind", "out")]))
    body = zlib.compress("\n".join(lines).encode(), 6)
    head = f"MOLTDEMO-BIN 1 {hashlib.sha256(body).hexdigest()} {len(ir['functions'])} {len(lines)}\n"
    return head.encode() + json.dumps(sorted(kinds, key=kinds.get)).encode() + b"\n" + body


def backend_daemon() -> int:
    """Child side of MOLT_BACKEND_DAEMON=1: handshake, read one request, compile, report."""
    print("ready", flush=True)
    req = json.loads(sys.stdin.readline())
    with open(req["input"], "rb") as fh:
        atomic_write(req["output"], backend_compile(fh.read()))
    print("done", flush=True)
    return 0


def atomic_write(path: str, data: bytes | str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the build
def cache_root() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("MOLT_CACHE") or "~/.cache/moltdemo"))


def artifacts_root(out_dir: str | None, base: str) -> str:
    """molt: <out-dir>/.molt_build/<base>, else $MOLT_HOME/build/<base> (MOLT_HOME=<cache>/home)."""
    if out_dir:
        return os.path.join(os.path.abspath(out_dir), ".molt_build", base)
    return os.path.join(os.environ.get("MOLT_HOME") or os.path.join(cache_root(), "home"), "build", base)


def acquire_lock(path: str, timeout: float) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise TimeoutError("Timed out waiting for build lock") from None
            time.sleep(0.05)


def run_backend(payload: bytes, staging: str, daemon: bool, ph: Phases) -> None:
    """Backend compile: in a child 'daemon' process (MOLT_BACKEND_DAEMON on) or in-process (off)."""
    if not daemon:
        ph.mark("backend_dispatch")
        ph.mark("backend_subprocess_compile")
        atomic_write(staging, backend_compile(payload))
        return
    request = staging + ".request.json"
    atomic_write(request, payload)
    ph.mark("backend_daemon_setup")
    child = subprocess.Popen([sys.executable, DEMO_FILE, "__backend-daemon"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("backend daemon failed to start")
        ph.mark("backend_dispatch")
        child.stdin.write(json.dumps({"input": request, "output": staging}) + "\n")
        child.stdin.flush()
        ph.mark("backend_daemon_compile")
        if child.stdout.readline().strip() != "done" or child.wait() != 0:
            raise RuntimeError(f"backend daemon failed (rc={child.wait()})")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        os.path.exists(request) and os.unlink(request)


def frontend(entry_path: str, profile: str, cargo: str, use_cache: bool, ph: Phases, timings: list) -> tuple:
    """module_graph, module_analysis and ir_lowering (or the cached IR on a hit)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.splitext(os.path.basename(entry_path))[0].split(".")[-1])
    if not os.path.isfile(entry_path):
        raise FrontendError(f"error: entry not found: {entry_path}")
    entry = Mod(base, entry_path, "source", project=True)
    ph.mark("module_graph")
    graph = Graph(entry)
    reasons = resolve_closure(graph, base)
    mods = [graph.mods[n] for n in sorted(reasons) if n != base] + [entry]
    ph.mark("module_analysis")
    key = hashlib.sha256(f"{DEMO_VERSION}\0{profile}\0{cargo if profile == 'release' else ''}\0{sys.version}".encode())
    scopes = {}
    for m in mods:
        t = time.perf_counter()
        if m.kind != "native":
            graph.parse(m)
            scopes[m.name] = analyze(m)
        key.update(f"\0{m.name}\0{m.path}\0".encode() + m.source)
        timings.append({"module": m.name, "path": m.path, "visit_s": time.perf_counter() - t, "lower_s": 0.0})
    key = key.hexdigest()
    ph.mark("ir_lowering")
    cached = os.path.join(cache_root(), key[:2], key)
    ir = None
    if use_cache and os.path.exists(os.path.join(cached, "ir.json")):
        with open(os.path.join(cached, "ir.json"), "rb") as fh:
            ir = json.load(fh)
    if ir is None:
        functions = []
        for m, tm in zip(mods, timings):
            t = time.perf_counter()
            fns = Lowerer(m, scopes.get(m.name, {})).lower_module()
            optimise(fns, profile, cargo)
            functions += fns
            tm["lower_s"] = time.perf_counter() - t
        ir = {"functions": functions + [molt_main(mods)], "module_registry": module_registry(mods)}
    for tm in timings:
        tm.update(visit_s=round(tm["visit_s"], 6), lower_s=round(tm["lower_s"], 6),
                  total_s=round(tm["visit_s"] + tm["lower_s"], 6), timed_out=False)
    return base, graph, reasons, mods, ir, key, cached


def build(args: argparse.Namespace) -> int:
    env = os.environ
    diag_on = not args.no_diagnostics and bool(args.diagnostics or args.diagnostics_file or
                                               env.get("MOLT_BUILD_DIAGNOSTICS", "").strip().lower() in TRUTHY)
    if args.no_diagnostics and args.diagnostics_file:
        print("error: --no-diagnostics conflicts with --diagnostics-file", file=sys.stderr)
        return 2
    cargo = env.get("MOLT_RELEASE_CARGO_PROFILE", "release") or "release"
    daemon = env.get("MOLT_BACKEND_DAEMON", "1").strip().lower() not in ("0", "off", "false", "no")
    use_cache = not args.no_cache
    try:
        lock = acquire_lock(os.path.join(cache_root(), "build.lock"), float(env.get("MOLT_BUILD_LOCK_TIMEOUT", "60")))
    except TimeoutError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        ph, timings = Phases(), []
        ph.mark("resolve_entry", ph.t0)
        entry_path = os.path.abspath(os.path.expanduser(args.entry))
        try:
            base, graph, reasons, mods, ir, key, cached = frontend(entry_path, args.build_profile, cargo, use_cache, ph, timings)
        except FrontendError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        if args.emit_ir:
            atomic_write(os.path.abspath(args.emit_ir), json.dumps(ir, indent=2) + "\n")
        out_dir = os.path.abspath(args.out_dir) if args.out_dir else artifacts_root(None, base)
        binary = os.path.join(out_dir, base)
        ph.mark("cache_lookup")
        hit = use_cache and os.path.exists(os.path.join(cached, "binary"))
        if args.cache_report:
            print("Cache: disabled" if not use_cache else f"Cache: hit ({key}) [module]" if hit else f"Cache: miss ({key})", flush=True)
        if hit:
            ph.mark("runtime_setup")
            with open(os.path.join(cached, "binary"), "rb") as fh:
                atomic_write(binary, fh.read())
        else:
            t = time.perf_counter()
            ph.mark("backend_codegen", t)
            ph.mark("backend_prepare", t)
            payload = json.dumps(ir, separators=(",", ":")).encode()
            staging = os.path.join(out_dir, f".{base}.staging")
            try:
                run_backend(payload, staging, daemon, ph)
            except (RuntimeError, OSError) as exc:
                print(f"error: backend compile failed: {exc}", file=sys.stderr)
                return 1
            ph.mark("backend_artifact_stage")
            os.replace(staging, binary)
            if use_cache:
                ph.mark("backend_cache_write")
                atomic_write(os.path.join(cached, "ir.json"), payload)
                with open(binary, "rb") as fh:
                    atomic_write(os.path.join(cached, "binary"), fh.read())
        payload_d = diagnostics(ph, base, entry_path, graph, reasons, mods, ir, timings) if diag_on else None
        print(f"Successfully built {binary}", file=sys.stderr)
        if payload_d is not None:
            dfile = args.diagnostics_file or (env.get("MOLT_BUILD_DIAGNOSTICS_FILE") or None)
            if dfile:
                dfile = os.path.expanduser(dfile)
                dfile = dfile if os.path.isabs(dfile) else os.path.join(artifacts_root(args.out_dir, base), dfile)
                atomic_write(dfile, json.dumps(payload_d, indent=2) + "\n")
            print_block(payload_d, dfile)
        return 0
    finally:
        os.close(lock)


# ----------------------------------------------------------------------------- diagnostics
def phase_attribution(total: float, phases: dict[str, float]) -> dict:
    """molt's _build_phase_attribution for a native build (wasm keys are 0)."""
    vals = {k: 0.0 for k in PHASE_ATTR_KEYS}
    for k in ("resolve_entry", "module_graph", "module_analysis", "ir_lowering", "backend_codegen"):
        vals[k] = phases.get(k, 0.0)
    vals["frontend_lowering"] = round(sum(vals[k] for k in ("resolve_entry", "module_graph", "module_analysis", "ir_lowering")), 6)
    vals["final_app_codegen"] = vals["backend_codegen"]
    share = {k: round(v / total, 8) if total > 0 else 0.0 for k, v in vals.items()}
    return {"schema_version": 1, "total_sec": total, "phase_sec": vals, "phase_share": share,
            "ranked_phases": [k for k, _ in sorted(vals.items(), key=lambda kv: (-kv[1], kv[0]))]}


def diagnostics(ph: Phases, base: str, entry_path: str, graph: Graph, reasons: dict, mods: list[Mod],
                ir: dict, timings: list) -> dict:
    end = time.perf_counter()
    total, phases = round(end - ph.t0, 6), ph.durations(end)
    names = sorted(reasons)
    summary = dict(sorted(Counter(r for rs in reasons.values() for r in rs).items()))
    image = {"kind": "entry_script", "selector_source": "cli:file", "entry_module": base, "source_path": entry_path,
             "project_root": os.path.dirname(entry_path), "module_roots": graph.roots, "root_modules": [base],
             "closure_mode": "reachable_only"}
    by = lambda r: [n for n in names if r in reasons[n]]
    closure = {"image": image, "known_modules": names, "direct_call_modules": names, "compile_modules": names,
               "declared_root_modules": [base], "entry_reachable_modules": by("entry_closure"),
               "runtime_support_modules": [], "stdlib_support_modules": [m.name for m in mods if not m.project],
               "package_parent_modules": by("package_parent"), "runtime_import_dispatch_roots": [], "stub_parents": [],
               "namespace_module_names": [], "spawn_enabled": bool(by("spawn_closure")),
               "runtime_import_support": {"needs_generated_importer": False, "needs_runtime_import_support": False},
               "external_native_artifacts": {"artifacts": []}, "native_support_function_roots_by_module": {}}
    ops_counts = {f"native_support_{k}": 0 for k in ("iterations", "legacy_equivalent_source_parses",
                  "persisted_import_scan_hits", "persisted_import_scan_misses", "slice_cache_hits",
                  "slice_cache_misses", "slice_requests", "source_parses", "source_prunes")}
    ops_counts["native_support_iterations"] = 1
    order_hash = hashlib.sha256("\n".join(m.name for m in mods).encode()).hexdigest()
    frontend_info = {"schema_version": 1, "module_schedule": {"module_order_len": len(mods), "compile_order_len": len(mods),
                     "module_order_hash": order_hash, "compile_order_hash": order_hash},
                     "lowering": {"target_python": "py%d%d" % sys.version_info[:2], "module_chunking": True,
                                  "module_chunk_max_ops": CHUNK_MAX_OPS, "compile_equals_known": True}}
    top = sorted(timings, key=lambda t: (-t["total_s"], t["module"]))[:20]
    return {"enabled": True, "total_sec": total, "phase_sec": phases, "module_count": len(names),
            "module_graph_operation_counts": ops_counts, "module_reason_summary": summary, "module_reasons": reasons,
            "binary_image_closure": closure, "binary_image": image, "known_module_count": len(names),
            "compile_module_count": len(mods),
            "binary_image_analysis": {"schema_version": 1, "frontend": frontend_info,
                                      "backend_ir": {"schema_version": 1, "backend_ir": ir_stats(ir)}},
            "frontend_module_timings": timings, "frontend_module_timings_top": top,
            "frontend_parallel": {"enabled": False, "workers": 1, "mode": "serial", "reason": "demo_serial",
                                  "pipeline_stage_ms": {}},
            "phase_attribution": phase_attribution(total, phases)}


def print_block(p: dict, path: str | None) -> None:
    lines = ["Build diagnostics:", f"- total_sec: {p['total_sec']:.6f}", f"- modules: {p['module_count']}",
             f"- known_modules: {p['known_module_count']}", f"- compile_modules: {p['compile_module_count']}"]
    lines += [f"- phase.{k}: {v:.6f}s" for k, v in sorted(p["phase_sec"].items())]
    lines += [f"- reason.{k}: {v}" for k, v in sorted(p["module_reason_summary"].items())]
    lines += [f"- frontend.hotspot.{i}: {t['module']} total_s={t['total_s']:.6f} visit_s={t['visit_s']:.6f} "
              f"lower_s={t['lower_s']:.6f}" for i, t in enumerate(p["frontend_module_timings_top"][:10], 1)]
    if path:
        lines.append(f"- wrote: {os.path.abspath(path)}")
    print("\n".join(lines), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["__backend-daemon"]:
        return backend_daemon()
    ap = argparse.ArgumentParser(prog="moltdemo", description="DEMO stand-in for `molt build` (not molt).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile ENTRY.py")
    b.add_argument("entry")
    b.add_argument("--build-profile", choices=("dev", "release"), default="dev")
    cache = b.add_mutually_exclusive_group()
    cache.add_argument("--no-cache", action="store_true")
    b.add_argument("--cache-report", action="store_true")
    b.add_argument("--emit-ir")
    b.add_argument("--diagnostics", action="store_true")
    b.add_argument("--no-diagnostics", action="store_true")
    b.add_argument("--diagnostics-file")
    b.add_argument("--out-dir")
    return build(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
