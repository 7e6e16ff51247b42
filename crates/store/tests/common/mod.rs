//! A real etcd (Debian's `etcd-server`) for the tests: one member on loopback ports of its
//! own, its data in a temporary directory, killed when dropped (also when a test fails).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_store::Etcd;

pub(crate) struct EtcdServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub client_url: String,
    peer_url: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd_bin() -> PathBuf {
    let p =
        PathBuf::from(std::env::var("BERTH_TEST_ETCD").unwrap_or_else(|_| "/usr/bin/etcd".into()));
    assert!(
        p.exists(),
        "{} is missing: install Debian's etcd-server (scripts/deps.sh does), or point BERTH_TEST_ETCD at an etcd 3.4+ binary",
        p.display()
    );
    p
}

impl EtcdServer {
    pub(crate) async fn start() -> EtcdServer {
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd-")
            .tempdir()
            .unwrap();
        let mut s = EtcdServer {
            child: None,
            client_url: format!("http://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            dir,
        };
        s.spawn();
        s.client().await;
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).unwrap();
        let child = Command::new(etcd_bin())
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", self.client_url))
            .arg(format!("--advertise-client-urls={}", self.client_url))
            .arg(format!("--listen-peer-urls={}", self.peer_url))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer_url))
            .arg(format!("--initial-cluster=test={}", self.peer_url))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// A client, once the server answers (bounded: 20 s).
    pub(crate) async fn client(&self) -> Etcd {
        let t = std::time::Instant::now();
        loop {
            match Etcd::connect(
                std::slice::from_ref(&self.client_url),
                Duration::from_secs(2),
            )
            .await
            {
                Ok(e) => return e,
                Err(e) if t.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "etcd did not answer: {e}\n{}",
                    std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
                ),
            }
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The same member again, on its data and ports.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
