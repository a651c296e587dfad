"""Static checks of generated Manim code, without running or importing it.

Reads the code on stdin and the expected Scene class name from argv[1]; prints
{"problems": ["line N: ...", ...]} (empty when the code may be rendered). The messages are
feedback for a code-writing model: each names the rule and the line. The sandbox that renders
the code holds whatever slips past these checks; they exist to refuse early and say why.
"""

import ast
import json
import re
import sys

ALLOWED_IMPORTS = (
    "manim", "numpy", "math", "cmath", "random", "typing", "itertools", "functools",
    "colorsys", "dataclasses", "enum", "collections", "__future__", "string", "fractions",
    "decimal", "statistics", "copy", "re", "textwrap", "abc", "heapq", "bisect", "numbers",
)
# Parts of allowed packages that touch files, processes or native code.
REFUSED_SUBMODULES = {"ctypeslib", "f2py", "distutils", "testing", "cli", "file_ops", "plugins", "_config"}
SCENE_BASES = {
    "Scene", "MovingCameraScene", "ThreeDScene", "ZoomedScene", "VectorScene",
    "LinearTransformationScene", "SpecialThreeDScene",
}
# Builtins that run code from strings, reach objects' insides, or read and write files.
REFUSED_BUILTINS = {
    "open": "reads or writes files",
    "exec": "runs code from a string",
    "eval": "runs code from a string",
    "compile": "builds code from a string",
    "__import__": "imports modules dynamically",
    "globals": "exposes the interpreter's internals",
    "locals": "exposes the interpreter's internals",
    "vars": "exposes the interpreter's internals",
    "getattr": "reaches attributes by name (use plain attribute access)",
    "setattr": "sets attributes by name (use plain assignment)",
    "delattr": "deletes attributes by name",
    "input": "waits for a terminal that is not there",
    "breakpoint": "starts a debugger",
    "help": "starts an interactive helper",
    "memoryview": "reaches raw memory",
    "exit": "ends the interpreter",
    "quit": "ends the interpreter",
}
# Modules that reach files, processes, the network or native code; refused as names and as
# attributes too, since `from manim import *` brings modules along (`utils.file_ops.os`).
REFUSED_MODULES = {
    "os", "sys", "subprocess", "socket", "shutil", "pathlib", "importlib", "ctypes", "pickle",
    "marshal", "urllib", "http", "requests", "builtins", "tempfile", "multiprocessing",
    "threading", "asyncio", "webbrowser", "pty", "fcntl", "mmap", "shelve", "sqlite3", "runpy",
    "ctypeslib", "file_ops",
}
# The same, and the ways to the interpreter's insides (frames, code objects) without dunders,
# refused as attributes only: as plain names (`signal`, `types`) they are common variables.
REFUSED_ATTRIBUTES = REFUSED_MODULES | {
    "io", "glob", "signal", "inspect", "gc", "ssl", "selectors", "resource", "zipfile",
    "tarfile", "platform", "types", "operator", "Path", "gi_frame", "gi_code", "cr_frame",
    "ag_frame", "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "tb_frame",
    "tb_next", "co_code", "func_globals", "mro",
}
# numpy's and Manim's helpers that read or write files, or reach through to the interpreter.
FILE_HELPERS = {
    "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt", "fromfile",
    "tofile", "memmap", "fromregex", "DataSource", "SVGMobject", "ImageMobject", "add_sound",
    "register_font", "get_type_hints", "ForwardRef", "_evaluate", "tempconfig",
}
LATEX_MOBJECTS = {
    "MathTex", "Tex", "SingleStringMathTex", "TexTemplate", "TexTemplateLibrary", "Matrix",
    "IntegerMatrix", "DecimalMatrix", "MobjectMatrix", "BulletedList", "Title", "DecimalNumber",
    "Integer", "Variable", "BraceLabel", "BraceText", "MathTable", "DecimalTable", "IntegerTable",
    "ChangingDecimal", "ChangeDecimalToValue",
}
# Settings the renderer owns: where files go and the frame's size.
OWNED_CONFIG = {
    "media_dir", "video_dir", "images_dir", "text_dir", "tex_dir", "partial_movie_dir",
    "output_file", "pixel_width", "pixel_height", "frame_rate", "frame_width", "frame_height",
    "frame_size", "renderer", "write_to_movie", "format", "movie_file_extension", "transparent",
    "save_last_frame", "custom_folders", "input_file", "quality", "log_dir", "log_to_file",
    "media_embed", "preview", "disable_caching", "flush_cache",
}
ALLOWED_DUNDERS = {"__init__", "__name__", "__main__"}
DUNDER_IN_FORMAT = re.compile(r"\{[^{}]*__\w+__")
DUNDER = re.compile(r"__\w+__")
MAX_PROBLEMS = 10


def check(source, class_name):
    try:
        tree = ast.parse(source, filename="scene.py")
    except SyntaxError as e:
        where = f"line {e.lineno}: " if e.lineno else ""
        return [f"{where}syntax error: {e.msg}"]
    except (RecursionError, MemoryError, ValueError) as e:
        return [f"the code cannot be parsed: {type(e).__name__}: {e}"]
    problems = []
    try:
        Checker(problems).visit(tree)
    except RecursionError:
        problems.append("the code is nested too deeply to check")
    problems.extend(scene_class_problems(tree, class_name))
    problems.sort(key=line_of)
    return problems


def line_of(problem):
    match = re.match(r"line (\d+):", problem)
    return int(match.group(1)) if match else 0


class Checker(ast.NodeVisitor):
    def __init__(self, problems):
        self.problems = problems

    def refuse(self, node, message):
        self.problems.append(f"line {getattr(node, 'lineno', 0)}: {message}")

    def check_module(self, node, name):
        parts = name.split(".")
        if parts[0] not in ALLOWED_IMPORTS:
            allowed = ", ".join(ALLOWED_IMPORTS)
            self.refuse(node, f"import of `{name}` is not allowed (allowed: {allowed})")
        elif any(p in REFUSED_SUBMODULES or p.startswith("_") for p in parts[1:]):
            self.refuse(node, f"import of `{name}` is not allowed: it reaches files or native code")

    def visit_Import(self, node):
        for alias in node.names:
            self.check_module(node, alias.name)
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        if node.level:
            self.refuse(node, "relative imports are not allowed: the scene is one file")
        else:
            self.check_module(node, node.module or "")
            for alias in node.names:
                self.check_name(node, alias.name)
        self.generic_visit(node)

    def check_name(self, node, name, attribute=False):
        if attribute and name in REFUSED_ATTRIBUTES - REFUSED_MODULES:
            self.refuse(node, f"`.{name}` is not allowed: it reaches files, processes or the interpreter's internals")
        elif name in REFUSED_BUILTINS:
            self.refuse(node, f"`{name}` is not allowed: it {REFUSED_BUILTINS[name]}")
        elif name in REFUSED_MODULES:
            self.refuse(node, f"`{name}` is not allowed: scenes may not reach files, processes or the network")
        elif name in LATEX_MOBJECTS:
            self.refuse(node, f"`{name}` needs LaTeX, and LaTeX is not installed here: use Text (or MarkupText) instead")
        elif name in FILE_HELPERS:
            self.refuse(node, f"`{name}` is not allowed: it reads or writes files (draw with shapes and Text instead)")
        elif name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS:
            self.refuse(node, f"`{name}` is not allowed: double-underscore names reach the interpreter's internals")

    def visit_Name(self, node):
        self.check_name(node, node.id)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        self.check_name(node, node.attr, attribute=True)
        self.generic_visit(node)

    def visit_alias(self, node):
        if node.asname:
            self.check_name(node, node.asname)

    def visit_Call(self, node):
        # `Code` renders a listing: from a string it is fine, from a file it reads one.
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name == "Code" and (node.args or any(k.arg in ("code_file", None) for k in node.keywords)):
            self.refuse(node, "`Code` may only take `code_string=`: reading `code_file` reads a file")
        self.generic_visit(node)

    def visit_Assign(self, node):
        for target in node.targets:
            self.check_config_target(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        self.check_config_target(node.target)
        self.generic_visit(node)

    def check_config_target(self, target):
        key = None
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "config":
            key = target.attr
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name) and target.value.id == "config":
            key = target.slice.value if isinstance(target.slice, ast.Constant) else "?"
        if key is not None and (key == "?" or key in OWNED_CONFIG):
            self.refuse(target, f"`config.{key}` is set by the renderer (frame size, rate and output): leave it")

    def visit_Constant(self, node):
        if not isinstance(node.value, str):
            return
        if DUNDER_IN_FORMAT.search(node.value):
            self.refuse(node, "a format string may not name double-underscore attributes")
        elif DUNDER.fullmatch(node.value) and node.value not in ALLOWED_DUNDERS:
            self.refuse(node, f"the string `{node.value}` is not allowed: it names the interpreter's internals")


def scene_class_problems(tree, class_name):
    """Exactly one Scene subclass, named `class_name`, with a `construct` method."""
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    scenes = {}
    changed = True
    # Scene-ness passes through the code's own classes (`class Main(Base)`, `Base(Scene)`).
    while changed:
        changed = False
        for c in classes:
            if c.name in scenes:
                continue
            for base in c.bases:
                base_name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else None
                if base_name in SCENE_BASES or base_name in scenes:
                    scenes[c.name] = c
                    changed = True
                    break
    # A base the code derives its scene from is part of that scene, not a second one.
    bases = {b.id for c in scenes.values() for b in c.bases if isinstance(b, ast.Name)}
    scenes = {n: c for n, c in scenes.items() if n not in bases}
    if not scenes:
        return [f"no Scene class: define `class {class_name}(Scene)` with a `construct(self)` method"]
    if len(scenes) > 1:
        names = ", ".join(f"`{n}` (line {c.lineno})" for n, c in scenes.items())
        return [f"{len(scenes)} Scene classes ({names}): define exactly one, named `{class_name}`"]
    name, node = next(iter(scenes.items()))
    if name != class_name:
        return [f"line {node.lineno}: the Scene class is named `{name}`; it must be named `{class_name}`"]
    methods = {n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    own_bases = any(isinstance(b, ast.Name) and b.id not in SCENE_BASES for b in node.bases)
    if "construct" not in methods and not own_bases:
        return [f"line {node.lineno}: `{class_name}` has no `construct(self)` method"]
    return []


def main():
    source = sys.stdin.read()
    problems = check(source, sys.argv[1])
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS] + [f"... and {more} more"]
    json.dump({"problems": problems}, sys.stdout)


main()
