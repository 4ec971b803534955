"""Flags: what a notebook's code does that a person should look at, read from its syntax
tree (nothing runs). They never change a score; they tell the instructor where to look.

| flag | what the code does |
| --- | --- |
| ``calls bnlib`` | uses bnlib itself (``bnlib.batch_norm``, ``from bnlib import fold``) |
| ``calls bnlib.check`` | uses the answer key: anything in ``bnlib.check`` but the checks a
  check cell calls (``FORWARD.reference``, ``homework_1``, the engine) |
| ``calls torch`` | imports or uses torch |
| ``dynamic import`` | imports by a computed name or through the import machinery:
  ``__import__``, ``importlib``, ``builtins``/``__builtins__``, ``sys.modules`` |
| ``dynamic code`` | runs code made at run time: ``exec``, ``eval``, ``compile``, ``%run`` |
| ``introspection`` | frames, ``gc``, ``inspect``, ``ctypes``, ``globals()``, ``vars()``,
  ``getattr`` by a computed name, dunder attributes such as ``__globals__`` |
| ``patches a module`` | assigns to an attribute of something imported |
| ``IPython hooks`` | registers IPython events, transformers or magics |
| ``starts or ends processes`` | subprocesses, forks, signals, threads, shell escapes |
| ``reads files`` | ``open``, ``np.load``, ``Path.read_text``, directory listings |
| ``code that does not parse`` | a cell that is neither Python nor IPython |
| ``code too deep to read`` | a cell nested too deeply for the reader (it may still run) |

Names are followed through aliases, wherever they are made: ``import bnlib.check as c``,
``from bnlib import check as ref``, ``k = bnlib.check``, ``m = importlib.import_module("torch")``,
``getattr(c, "FORWARD")``. Scopes are not: a name bound to a module anywhere counts as that
module everywhere (a flag too many, never one too few). The walk is iterative
(:func:`ast.walk`), so no depth of nesting makes the reader recurse.
"""

from __future__ import annotations

import ast

CALLS_BNLIB = "calls bnlib"
CALLS_CHECK = "calls bnlib.check"
CALLS_TORCH = "calls torch"
DYNAMIC_IMPORT = "dynamic import"
DYNAMIC_CODE = "dynamic code"
INTROSPECTION = "introspection"
PATCHES = "patches a module"
HOOKS = "IPython hooks"
PROCESSES = "starts or ends processes"
FILES = "reads files"
UNPARSED = "code that does not parse"
TOO_DEEP = "code too deep to read"

# what each module, or dotted name, imported or used, says (the longest prefix decides)
MODULES = {
    "torch": CALLS_TORCH,
    "importlib": DYNAMIC_IMPORT,
    "builtins": DYNAMIC_IMPORT,
    "imp": DYNAMIC_IMPORT,
    "pkgutil": DYNAMIC_IMPORT,
    "runpy": DYNAMIC_IMPORT,
    "zipimport": DYNAMIC_IMPORT,
    "sys.modules": DYNAMIC_IMPORT,
    "sys.meta_path": DYNAMIC_IMPORT,
    "sys.path_hooks": DYNAMIC_IMPORT,
    "inspect": INTROSPECTION,
    "gc": INTROSPECTION,
    "ctypes": INTROSPECTION,
    "traceback": INTROSPECTION,
    "sys._getframe": INTROSPECTION,
    "sys.settrace": INTROSPECTION,
    "sys.setprofile": INTROSPECTION,
    "sys.addaudithook": INTROSPECTION,
    "subprocess": PROCESSES,
    "multiprocessing": PROCESSES,
    "concurrent": PROCESSES,
    "signal": PROCESSES,
    "pty": PROCESSES,
    "socket": PROCESSES,
    "threading": PROCESSES,
    "_thread": PROCESSES,
    "asyncio": PROCESSES,
    "glob": FILES,
    "io.open": FILES,
    "pickle": FILES,
    "numpy.load": FILES,
    "numpy.loadtxt": FILES,
    "numpy.fromfile": FILES,
    "numpy.genfromtxt": FILES,
    "numpy.memmap": FILES,
}
OS_PROCESSES = {"fork", "forkpty", "system", "popen", "kill", "killpg", "_exit", "setsid"}
OS_PROCESSES |= {"execv", "execve", "execvp", "execl", "execlp", "spawnv", "posix_spawn"}
OS_FILES = {"open", "read", "listdir", "scandir", "walk", "fdopen"}
BUILTINS = {
    "__import__": DYNAMIC_IMPORT,
    "__builtins__": DYNAMIC_IMPORT,
    "__loader__": DYNAMIC_IMPORT,
    "__spec__": DYNAMIC_IMPORT,
    "exec": DYNAMIC_CODE,
    "eval": DYNAMIC_CODE,
    "compile": DYNAMIC_CODE,
    "globals": INTROSPECTION,
    "locals": INTROSPECTION,
    "vars": INTROSPECTION,
    "open": FILES,
}
DUNDERS = {"__globals__", "__subclasses__", "__code__", "__closure__", "__dict__"}
DUNDERS |= {"__getattribute__", "__bases__", "__mro__"}
FRAMES = {"f_back", "f_locals", "f_globals", "gi_frame", "tb_frame", "cr_frame"}
HOOK_ATTRIBUTES = {"register_magic_function", "input_transformers_post", "ast_transformers"}
HOOK_ATTRIBUTES |= {"input_transformers_cleanup", "set_custom_exc", "register_magics"}
SHELL_MAGICS = {"bash", "sh", "script", "system", "sx", "perl", "ruby", "pip", "conda"}
IMPORTERS = {"__import__", "builtins.__import__", "importlib.import_module"}
CODE_MAGICS = {"run", "load", "load_ext", "loadpy", "macro", "rerun", "recall"}


def parse(source: str) -> ast.Module | None:
    """The cell as Python; a cell that is only IPython (magics, ``!`` commands) through
    IPython's own transformer first (which turns them into calls; nothing runs). None when
    neither parses. RecursionError and MemoryError (a cell nested too deeply) propagate."""
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError, ImportError):
        return None


def dotted(node: ast.AST) -> str:
    """``a.b.c`` for a chain of attributes on a name; "" for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    return ".".join([node.id, *reversed(parts)])


def constant(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class Scanner:
    """Reads every cell's tree once: aliases first (what each name is bound to), then the
    uses (what each name, attribute chain and call reaches)."""

    def __init__(self, checks: set[str]) -> None:
        self.checks = checks  # the bnlib.check names a check cell may use
        self.aliases: dict[str, str] = {}  # local name -> what it stands for ("bnlib.check")
        self.found: set[str] = set()
        self.pending: list[ast.AST] = []  # the Python inside magics, read after the cells

    # -- what a name, or a chain of attributes, stands for ------------------------------

    def resolve(self, node: ast.AST) -> str:
        """The dotted origin of an expression (``c.FORWARD`` -> ``bnlib.check.FORWARD``),
        "" when it is not a chain from an imported name."""
        if isinstance(node, ast.Call):
            imported = self.imported_by(node)
            if imported:
                return imported
            name = dotted(node.func)
            if name in ("getattr", "builtins.getattr") and len(node.args) >= 2:
                attr, base = constant(node.args[1]), self.resolve(node.args[0])
                return f"{base}.{attr}" if base and attr else ""
            return ""
        chain = dotted(node)
        if not chain:
            return ""
        head, _, rest = chain.partition(".")
        origin = self.aliases.get(head)
        if origin is None:
            return chain if head in BUILTINS else ""
        return f"{origin}.{rest}" if rest else origin

    def imported_by(self, call: ast.Call) -> str:
        """The module ``__import__("m")`` or ``importlib.import_module("m")`` loads."""
        target = self.resolve(call.func) or dotted(call.func)
        if target in IMPORTERS and call.args:
            return constant(call.args[0]) or ""
        return ""

    def bind(self, tree: ast.AST) -> None:
        """Aliases: imports, and names assigned a module or something in one."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.note(alias.name)
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    if alias.name == "*":  # everything, so anything of it may be used
                        self.use(node.module + ".*")
                    else:
                        self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                        self.use(f"{node.module}.{alias.name}")
                self.note(node.module)
            elif isinstance(node, (ast.Assign, ast.NamedExpr, ast.AnnAssign)) and node.value:
                origin = self.resolve(node.value)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if origin and isinstance(target, ast.Name):
                        self.aliases[target.id] = origin

    # -- what the code uses --------------------------------------------------------------

    def note(self, module: str) -> None:
        """An imported module: what its name (or its longest listed prefix) says."""
        parts = module.split(".")
        for k in range(len(parts), 0, -1):
            flag = MODULES.get(".".join(parts[:k]))
            if flag:
                self.found.add(flag)
                return

    def use(self, origin: str) -> None:
        """A name or attribute chain reached in the code, by its origin."""
        if not origin:
            return
        head, _, rest = origin.partition(".")
        if head == "bnlib" and rest:
            if rest == "check" or rest.startswith("check."):
                member = rest[len("check.") :].split(".")[0] if rest != "check" else ""
                if member and member not in self.checks:
                    self.found.add(CALLS_CHECK)
            else:
                self.found.add(CALLS_BNLIB)
        elif head == "os":
            name = rest.split(".")[0]
            if name in OS_PROCESSES:
                self.found.add(PROCESSES)
            elif name in OS_FILES:
                self.found.add(FILES)
        elif head in BUILTINS and not rest:
            self.found.add(BUILTINS[head])
        self.note(origin)

    def scan(self, tree: ast.AST) -> None:
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Name, ast.Attribute)) and id(node) not in inner:
                self.use(self.resolve(node))
            if isinstance(node, ast.Attribute):
                self.attribute(node)
            elif isinstance(node, ast.Call):
                self.call(node)
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = getattr(node, "targets", None) or [node.target]
                if any(self.is_imported(t) for t in targets if isinstance(t, ast.Attribute)):
                    self.found.add(PATCHES)

    def is_imported(self, target: ast.Attribute) -> bool:
        """Whether an attribute target lives on something imported (a module's member)."""
        return bool(self.resolve(target.value))

    def attribute(self, node: ast.Attribute) -> None:
        if node.attr in ("__builtins__", "__import__"):
            self.found.add(DYNAMIC_IMPORT)
        elif node.attr in DUNDERS:
            self.found.add(INTROSPECTION)
        elif node.attr in FRAMES:
            self.found.add(INTROSPECTION)
        elif node.attr in ("read_text", "read_bytes"):
            self.found.add(FILES)
        events = node.attr == "register" and getattr(node.value, "attr", "") == "events"
        if events or node.attr in HOOK_ATTRIBUTES:
            self.found.add(HOOKS)

    def call(self, node: ast.Call) -> None:
        name = self.resolve(node.func) or dotted(node.func)
        imported = self.imported_by(node)
        if imported:
            self.found.add(DYNAMIC_IMPORT)
            self.use(imported)
        if name in ("getattr", "setattr", "delattr", "hasattr") and node.args:
            attr = constant(node.args[1]) if len(node.args) > 1 else None
            base = self.resolve(node.args[0])
            if attr is None:
                self.found.add(INTROSPECTION)
                self.use(base + ".*" if base else "")
            else:
                self.use(f"{base}.{attr}" if base else "")
            if name != "getattr" and name != "hasattr" and base:
                self.found.add(PATCHES)
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call):
            if dotted(func.value.func) == "get_ipython":  # what IPython makes of % and !
                if func.attr in ("system", "getoutput"):
                    self.found.add(PROCESSES)
                self.magic(node)

    def magic(self, node: ast.Call) -> None:
        """``get_ipython().run_line_magic(name, line)`` / ``run_cell_magic(name, line, body)``,
        as IPython writes ``%name`` and ``%%name``: shell and run magics are flagged, and the
        Python inside the others (``%timeit f()``, ``%%capture``) is read like any code."""
        attr = node.func.attr
        if attr not in ("run_line_magic", "run_cell_magic", "run_cell"):
            return
        if attr == "run_cell":
            self.found.add(DYNAMIC_CODE)
            return
        words = [constant(a) for a in node.args]
        magic = words[0] if words else None
        if magic in SHELL_MAGICS:
            self.found.add(PROCESSES)
        elif magic in CODE_MAGICS or magic is None:
            self.found.add(DYNAMIC_CODE)
        for text in words[1:]:
            if text is None:
                self.found.add(DYNAMIC_CODE)
                continue
            try:
                self.pending.append(ast.parse(text))
            except (SyntaxError, ValueError):
                pass


def scan(sources: list[str], checks: set[str]) -> list[str]:
    """The flags of a notebook's code cells, sorted (see the module docstring).

    ``checks``: the names in ``bnlib.check`` that a check cell may use
    (:func:`grader.homeworks.check_functions`)."""
    scanner = Scanner(checks)
    trees = []
    for source in sources:
        try:
            tree = parse(source)
        except (RecursionError, MemoryError):
            scanner.found.add(TOO_DEEP)
            continue
        if tree is None:
            scanner.found.add(UNPARSED)
        else:
            trees.append(tree)
    try:
        for _ in range(2):  # twice: an alias of an alias made in a later cell
            for tree in trees:
                scanner.bind(tree)
        while trees:
            for tree in trees:
                scanner.scan(tree)
            trees, scanner.pending = scanner.pending, []  # the Python inside magics
            for tree in trees:
                scanner.bind(tree)
    except RecursionError:  # getattr(getattr(...)) nested thousands deep
        scanner.found.add(TOO_DEEP)
    return sorted(scanner.found)


TORCH_IN_NUMPY_PART = "calls torch in a NumPy part"


def torch_in_functions(sources: list[str], functions: set[str]) -> bool:
    """Whether a function named in ``functions`` (the NumPy-only parts of a homework whose
    notebook imports torch for another part) uses torch: the name ``torch``, or a name a cell
    imported from torch (``import torch as t``, ``from torch import autograd``)."""
    trees = []
    for source in sources:
        try:
            tree = parse(source)
        except (RecursionError, MemoryError):
            continue
        if tree is not None:
            trees.append(tree)
    names = {"torch"}
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name.split(".")[0] == "torch"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            names |= {a.asname or a.name for a in node.names}
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in functions:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and inner.id in names:
                    return True
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    modules = [a.name for a in inner.names] + [getattr(inner, "module", "")]
                    if any((m or "").split(".")[0] == "torch" for m in modules):
                        return True
    return False
