//! Generated Manim scenes, for real: the offline templates pass the checks and render (probed,
//! and their frames read back; `scenes/renders.rs`), the checks refuse each forbidden
//! construct by name, and the sandbox holds against scenes that skip the checks (network,
//! files, processes, endless loops, huge files), leaving no process and no folder behind.
//! Also `FastStart`, which packs a rendered scene for streaming. `make bench-scenes` runs the
//! ignored benchmark.

#[path = "scenes/common.rs"]
mod common;
#[path = "support/pixels.rs"]
mod pixels;
#[path = "scenes/renders.rs"]
mod renders;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reelay_core::ports::{SceneCode, SceneError, SceneRunner};
use reelay_media::{ManimSandbox, ManimSettings};

use common::*;

#[tokio::test]
async fn the_checks_refuse_each_forbidden_construct_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let runner = ManimSandbox::new(settings(dir.path()));
    let good = scene("        self.play(Write(Text(\"hello\")))");
    runner.check(&good).await.unwrap();

    let body = |line: &str| scene(&format!("        {line}"));
    let table: Vec<(&str, SceneCode, &str)> = vec![
        ("import os", code("import os\nfrom manim import *\nclass Demo(Scene):\n    def construct(self): pass\n"), "line 1: import of `os` is not allowed (allowed: manim, numpy"),
        ("from subprocess", code("from subprocess import run\nfrom manim import *\nclass Demo(Scene):\n    def construct(self): pass\n"), "line 1: import of `subprocess` is not allowed"),
        ("open", body("open('/etc/passwd')"), "line 5: `open` is not allowed: it reads or writes files"),
        ("eval", body("eval('1 + 1')"), "line 5: `eval` is not allowed"),
        ("exec", body("exec('x = 1')"), "line 5: `exec` is not allowed"),
        ("__import__", body("__import__('os')"), "line 5: `__import__` is not allowed"),
        ("getattr", body("getattr(self, 'camera')"), "line 5: `getattr` is not allowed"),
        ("subclasses", body("x = ().__class__.__subclasses__()"), "line 5: `__class__` is not allowed"),
        ("modules through manim", body("utils.file_ops.os.system('id')"), "line 5: `os` is not allowed"),
        ("MathTex", body("MathTex('x^2')"), "LaTeX is not installed here: use Text"),
        ("SVGMobject", body("SVGMobject('logo.svg')"), "`SVGMobject` is not allowed: it reads or writes files"),
        ("Code from a file", body("Code('scene.py')"), "`Code` may only take `code_string=`"),
        ("wrong class name", code("from manim import *\nclass Other(Scene):\n    def construct(self): pass\n"), "line 2: the Scene class is named `Other`; it must be named `Demo`"),
        ("two scenes", code("from manim import *\nclass Demo(Scene):\n    def construct(self): pass\nclass More(Scene):\n    def construct(self): pass\n"), "2 Scene classes"),
        ("syntax error", code("from manim import *\nclass Demo(Scene):\n    def construct(self)\n        pass\n"), "line 3: syntax error"),
        ("oversize", code(&format!("# {}\n", "x".repeat(70 * 1024))), "the limit is 65536 bytes"),
    ];
    for (name, scene, expected) in table {
        match runner.check(&scene).await {
            Err(SceneError::Code(message)) => assert!(message.contains(expected), "{name}: {message}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // Several problems come back together, one a line.
    let many = body("open('a'); eval('b'); exec('c')");
    let Err(SceneError::Code(message)) = runner.check(&many).await else {
        panic!()
    };
    assert_eq!(message.lines().count(), 3, "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_holds_against_scenes_that_skip_the_checks() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let scratch = scratch.canonicalize().unwrap();
    let mut limited = settings(&scratch);
    limited.max_output_bytes = 50 << 20;
    let runner = ManimSandbox::new(limited.clone());
    println!("network namespace: {}", runner.isolates_network().await);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let cases = [
        ("network", format!("        import socket\n        socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')"), "network"),
        ("raw socket", format!("        import socket\n        s = socket.socket()\n        s.connect(('127.0.0.1', {port}))"), "network"),
        ("passwd", "        print(open('/etc/passwd').read())".into(), "read /etc/passwd"),
        ("write outside", "        open('/tmp/reelay-escaped', 'w').write('x')".into(), "write /tmp/reelay-escaped"),
        ("subprocess", "        import subprocess\n        subprocess.run(['id'])".into(), "may not start processes"),
        ("huge file", "        f = open('big.bin', 'wb')\n        while True:\n            f.write(b'x' * (1 << 20))".into(), "larger than the 52428800 bytes"),
        ("memory", "        import numpy\n        numpy.ones((60000, 60000))".into(), "ran out of memory"),
        ("exception", "        1 / 0".into(), "line 5 (`1 / 0`): ZeroDivisionError"),
    ];
    for (name, body, expected) in cases {
        match runner.render(&scene(&body), SMALL).await {
            Err(SceneError::Code(message)) => {
                assert!(message.contains(expected), "{name}: {message}");
                assert!(!message.contains("root:x:0:0"), "{name}: {message}");
            }
            Err(e) => panic!("{name}: {e:?}"),
            Ok(_) => panic!("{name}: rendered"),
        }
        assert_eq!(
            processes_under(&scratch),
            Vec::<String>::new(),
            "{name}: processes left"
        );
        assert_eq!(entries(&scratch), Vec::<String>::new(), "{name}: folders left");
    }
    assert!(listener.accept().is_err(), "a scene reached the listener");
    assert!(!Path::new("/tmp/reelay-escaped").exists());

    // Endless loops: one spinning (the CPU limit), one sleeping (the wall clock).
    let spinning = ManimSandbox::new(ManimSettings {
        cpu_seconds: 3,
        timeout: Duration::from_secs(60),
        ..limited.clone()
    });
    let Err(SceneError::Code(message)) = spinning.render(&scene("        while True: pass"), SMALL).await else {
        panic!("an endless loop rendered")
    };
    assert!(message.contains("3 s of CPU time"), "{message}");
    let sleeping = ManimSandbox::new(ManimSettings {
        timeout: Duration::from_secs(5),
        ..limited
    });
    let started = Instant::now();
    let endless = scene("        import time\n        while True: time.sleep(1)");
    let Err(SceneError::Code(message)) = sleeping.render(&endless, SMALL).await else {
        panic!("an endless loop rendered")
    };
    assert!(message.contains("timed out after 5 s"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(processes_under(&scratch), Vec::<String>::new(), "processes left");

    // The same runner renders a good scene afterwards.
    let good = runner
        .render(&scene("        self.add(Text('still here'))"), SMALL)
        .await
        .unwrap();
    assert_eq!((good.info.width, good.info.height), (Some(426), Some(240)));
    assert_eq!(entries(&scratch).len(), 1, "only the movie's folder, while it is read");
    drop(good);
    assert_eq!(entries(&scratch), Vec::<String>::new());

    // Python without Manim is the machine's fault.
    let bare = ManimSandbox::new(ManimSettings::new("/usr/bin/python3", &scratch));
    let missing = bare.render(&scene(""), SMALL).await;
    if !python_has_manim("/usr/bin/python3") {
        assert!(
            matches!(&missing, Err(SceneError::Machine(m)) if m.contains("Manim")),
            "{:?}",
            missing.err()
        );
    }
    let nowhere = ManimSandbox::new(ManimSettings::new("/nonexistent/python", &scratch));
    assert!(matches!(
        nowhere.render(&scene(""), SMALL).await,
        Err(SceneError::Machine(_))
    ));
}

fn python_has_manim(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import manim"])
        .output()
        .is_ok_and(|o| o.status.success())
}
