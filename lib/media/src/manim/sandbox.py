"""Renders one generated Manim scene inside reelay's sandbox.

argv[1] is a request JSON written by the Rust side: {code, class_name, width, height, fps,
work, result, limits}. The process already runs in its own folder (`work`, also HOME and
TMPDIR), with a cleared environment, rlimits and, where the machine allows it, no network
namespace. This script adds the last layer: an audit hook, armed before the scene's code is
loaded, that ends the process on any network, process, native-code or file access outside
what rendering needs. Whatever happens, it writes one result JSON for the Rust side:
{"ok": true, "movie": path} or {"ok": false, "kind": ..., "message": ...}.
"""

import json
import os
import sys
import traceback

REQUEST = json.load(open(sys.argv[1], encoding="utf-8"))
WORK = os.path.realpath(REQUEST["work"])
RESULT = REQUEST["result"]
SCENE_FILE = os.path.join(WORK, "scene.py")
LIMITS = REQUEST["limits"]
MAX_MESSAGE = 600
LATEX_TOOLS = {"latex", "pdflatex", "xelatex", "lualatex", "dvisvgm", "dvips"}
LATEX_ADVICE = (
    "LaTeX is not installed here: use Text instead of MathTex/Tex "
    "(numbers and labels on axes need LaTeX too: add them with Text)"
)
# Exit code of a run the audit hook stopped (its result says why).
BLOCKED_EXIT = 86


def report(result):
    """Writes the result for the Rust side (replacing any earlier one)."""
    data = json.dumps(result).encode("utf-8")
    fd = os.open(RESULT, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def fail(kind, message):
    report({"ok": False, "kind": kind, "message": message[:MAX_MESSAGE]})


def scene_line(frames):
    """`line N (`source`): ` for the innermost frame of the scene's own code, if any."""
    found = None
    for filename, lineno in frames:
        if filename == SCENE_FILE:
            found = lineno
    if found is None:
        return ""
    try:
        text = SOURCE.splitlines()[found - 1].strip()
    except IndexError:
        text = ""
    if len(text) > 80:
        text = text[:77] + "..."
    return f"line {found} (`{text}`): " if text else f"line {found}: "


try:
    import manim  # noqa: F401 (imported before the hook is armed, from the read roots)
    from manim import Scene, config
except ImportError as e:
    fail("machine", f"Manim is not installed for {sys.executable}: {e}")
    sys.exit(3)

SOURCE = open(SCENE_FILE, encoding="utf-8").read()


def under(path, roots):
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def make_hook(work, read_roots):
    """The audit hook. Its state lives in this closure, out of the scene's reach."""
    write_roots = (work, "/dev/null")
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    refused_prefixes = ("ctypes.", "socket.", "os.exec", "os.spawn", "os.posix_spawn", "os.fork")
    refused = {
        "subprocess.Popen", "os.system", "os.forkpty", "pty.spawn", "os.kill", "os.killpg",
        "os.startfile", "resource.setrlimit", "resource.prlimit", "os.symlink", "os.link",
        "sys.remote_exec", "socket.__new__", "webbrowser.open", "os.chroot", "os.setuid",
        # A folder made unreadable could not be removed after the render.
        "os.chmod", "os.chown", "os.lchown", "os.lchmod",
    }
    in_work = {
        "os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.utime", "os.truncate", "os.chdir", "shutil.rmtree", "shutil.move", "shutil.copyfile",
        "os.removexattr", "os.setxattr", "tempfile.mkdtemp",
    }
    listing = {"os.listdir", "os.scandir", "glob.glob", "os.walk"}

    def resolve(path):
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        return os.path.realpath(os.path.join(work, os.fspath(path)))

    def stop(what):
        frames = []
        frame = sys._getframe(2)
        while frame is not None:
            frames.append((frame.f_code.co_filename, frame.f_lineno))
            frame = frame.f_back
        fail("blocked", scene_line(reversed(frames)) + what)
        os._exit(BLOCKED_EXIT)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if path is None or isinstance(path, int):
                return
            real = resolve(path)
            writes = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags is not None and flags & write_flags
            )
            if writes and not under(real, write_roots):
                stop(f"the scene tried to write {real}: scenes may only write in their own folder")
            if not writes and not under(real, read_roots):
                stop(f"the scene tried to read {real}: scenes may only read their own folder and Manim's files")
        elif event in refused or event.startswith(refused_prefixes):
            if event.startswith("socket."):
                stop(f"the scene tried to open a network connection ({event}): scenes have no network")
            if event in ("subprocess.Popen", "os.posix_spawn", "os.exec") and args:
                program = os.path.basename(os.fsdecode(args[0])) if isinstance(args[0], (str, bytes)) else ""
                if program in LATEX_TOOLS:
                    stop(LATEX_ADVICE)
            if event.startswith("ctypes."):
                stop("the scene tried to call native code through ctypes: scenes may not")
            if event in ("subprocess.Popen", "os.system", "pty.spawn") or event.startswith(("os.exec", "os.spawn", "os.posix_spawn", "os.fork")):
                stop(f"the scene tried to run a program ({event}): scenes may not start processes")
            stop(f"the scene tried {event}, which scenes may not do")
        elif event in in_work:
            if args and isinstance(args[0], (str, bytes, os.PathLike)) and not under(resolve(args[0]), (work,)):
                stop(f"the scene tried {event} on {resolve(args[0])}: scenes may only change their own folder")
        elif event in listing:
            if args and isinstance(args[0], (str, bytes, os.PathLike)) and not under(resolve(args[0]), read_roots):
                stop(f"the scene tried to list {resolve(args[0])}: scenes may only read their own folder")

    return hook


def read_roots():
    roots = {WORK, "/dev/null", "/dev/urandom", "/usr/share", "/usr/lib", "/etc/fonts"}
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        roots.add(os.path.realpath(prefix))
    for path in sys.path:
        if path and os.path.isdir(path):
            roots.add(os.path.realpath(path))
    return tuple(sorted(roots))


def configure():
    width, height, fps = REQUEST["width"], REQUEST["height"], REQUEST["fps"]
    config.media_dir = os.path.join(WORK, "media")
    config.video_dir = os.path.join(WORK, "media", "video")
    config.output_file = "scene"
    config.pixel_width = width
    config.pixel_height = height
    config.frame_rate = fps
    # Manim's units: the frame is 8 high; its width follows the aspect ratio (9:16 too).
    config.frame_height = 8.0
    config.frame_width = 8.0 * width / height
    config.preview = False
    config.disable_caching = True
    config.progress_bar = "none"
    config.verbosity = "ERROR"
    config.write_to_movie = True
    config.save_last_frame = False
    config.format = None
    config.renderer = "cairo"


def exception_result(error):
    frames = [(f.filename, f.lineno) for f in traceback.extract_tb(error.__traceback__)]
    where = scene_line(frames)
    if isinstance(error, MemoryError):
        mib = LIMITS["memory_bytes"] // (1024 * 1024)
        return "memory", f"{where}the scene ran out of memory (the limit is {mib} MiB)"
    if isinstance(error, OSError) and (error.errno == 27 or "File too large" in str(error)):
        return "fsize", f"{where}the scene wrote a file larger than the {LIMITS['max_output_bytes']} bytes allowed"
    if isinstance(error, OSError) and (error.errno == 28 or "No space left" in str(error)):
        return "machine", f"the render ran out of disk space: {error}"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return "exception", f"{where}{type(error).__name__}: {message}".rstrip(": ")


def main():
    configure()
    namespace = {"__name__": "scene", "__file__": SCENE_FILE}
    sys.addaudithook(make_hook(WORK, read_roots()))
    try:
        code = compile(SOURCE, SCENE_FILE, "exec")
        exec(code, namespace)  # noqa: S102 (the code was checked, and the hook is armed)
        scene_class = namespace.get(REQUEST["class_name"])
        if not (isinstance(scene_class, type) and issubclass(scene_class, Scene)):
            fail("exception", f"the code defines no Scene class named `{REQUEST['class_name']}`")
            return 4
        scene = scene_class()
        scene.render()
    except BaseException as error:  # noqa: BLE001 (every failure becomes feedback)
        kind, message = exception_result(error)
        fail(kind, message)
        return 4
    movie = str(scene.renderer.file_writer.movie_file_path or "")
    if not movie or not os.path.isfile(movie):
        fail("exception", "the scene rendered no video: play at least one animation (self.play or self.wait)")
        return 4
    report({"ok": True, "movie": movie})
    return 0


sys.exit(main())
