//! A moto server (moto from `.venv`, installed by `make deps`) standing in for AWS: one per
//! value, on a free loopback port, killed when the value is dropped. It runs behind
//! `serial_moto.py`, which serialises DynamoDB requests (moto's are not race-safe). It is started under
//! `setpriv --pdeathsig KILL`, so it also dies with the thread that started it if the test
//! process is killed before the drop runs: nothing outlives the tests.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub url: String,
}

impl Moto {
    /// Starts moto and waits until it accepts connections (well under a second or two).
    pub fn start() -> Moto {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let bin = root.join(".venv/bin/python");
        let front = root.join("tests/aws/serial_moto.py");
        assert!(
            root.join(".venv/bin/moto_server").exists(),
            "moto is missing: run `make deps`"
        );
        for _ in 0..5 {
            // A free port; another process may take it before moto binds, hence the retries.
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut command = if std::path::Path::new("/usr/bin/setpriv").exists() {
                let mut c = Command::new("/usr/bin/setpriv");
                c.args(["--pdeathsig", "KILL", "--"]).arg(&bin);
                c
            } else {
                Command::new(&bin)
            };
            let mut child = command
                .arg(&front)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn moto_server");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Moto {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                    };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // it exited: most likely the port was taken meanwhile
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("moto_server did not start");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
