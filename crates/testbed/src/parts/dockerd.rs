//! A private Docker Engine (Debian's `dockerd`), for tests that must restart
//! the daemon or fill it with containers without disturbing the shared engine
//! that `scripts/testbed.sh` started for everyone else.
//!
//! It keeps its data root across [`DockerEngine::restart`], so containers with
//! a restart policy come back, as they would on a real host.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::READY_TIMEOUT;
use crate::docker::BUSYBOX_IMAGE;
use crate::{Error, Process, Result, Testbed, io_err};

#[derive(Debug)]
pub struct DockerEngine {
    process: Option<Process>,
    dir: Option<TempDir>,
    exec_root: PathBuf,
}

impl DockerEngine {
    /// Starts the engine and imports the busybox image into it.
    pub async fn start(_tb: &Testbed) -> Result<Self> {
        let dir = Process::temp_dir("dockerd")?;
        // containerd's sockets live under the exec root and their paths must
        // fit in 108 bytes, so it cannot sit in the temp dir.
        let suffix = dir.path().file_name().map(|n| n.to_string_lossy().into_owned());
        let exec_root = PathBuf::from(format!("/run/stw-{}", suffix.unwrap_or_default()));
        let mut engine = DockerEngine { process: None, dir: Some(dir), exec_root };
        engine.launch().await?;
        engine.import_busybox()?;
        Ok(engine)
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().map(TempDir::path).expect("the dir lives as long as the engine")
    }

    /// `unix://…/docker.sock`, for `DOCKER_HOST` and bollard.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir().join("docker.sock").display())
    }

    async fn launch(&mut self) -> Result<()> {
        let dir = self.dir().to_owned();
        let mut cmd = Command::new("dockerd");
        cmd.args(["--iptables=false", "--bridge=none"])
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            // busybox `sleep` as PID 1 ignores SIGTERM: do not wait 15 s for it.
            .args(["--shutdown-timeout", "1"]);
        let mut process = Process::spawn_in("dockerd", cmd, &dir)?;
        let host = self.host();
        process
            .wait_ready(READY_TIMEOUT, || {
                let host = host.clone();
                async move { ping(&host).await }
            })
            .await?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the daemon (its containers stop with it) and starts it again on
    /// the same data.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(mut process) = self.process.take() {
            process.stop_leader_first();
        }
        self.launch().await
    }

    fn import_busybox(&self) -> Result<()> {
        let rootfs = Process::temp_dir("busybox-rootfs")?;
        let bin = rootfs.path().join("bin");
        std::fs::create_dir(&bin).map_err(io_err(&bin))?;
        std::fs::copy("/bin/busybox", bin.join("busybox")).map_err(io_err("/bin/busybox"))?;
        for applet in ["sh", "echo", "sleep", "seq", "cat", "true"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(io_err(&bin))?;
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("tar -C \"$ROOTFS\" -c . | docker import - {BUSYBOX_IMAGE}"))
            .env("ROOTFS", rootfs.path())
            .env("DOCKER_HOST", self.host())
            .output()
            .map_err(|source| Error::Spawn { part: "docker import".into(), source })?;
        if !out.status.success() {
            return Err(Error::Unexpected {
                what: "importing busybox into a private engine".into(),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }

    /// Removes every container; the daemon's own shutdown would leave their
    /// shims behind if it were killed.
    fn remove_all_containers(&self) {
        let host = self.host();
        let ids = Command::new("docker")
            .args(["ps", "--all", "--quiet"])
            .env("DOCKER_HOST", &host)
            .stderr(Stdio::null())
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "--force"])
                .args(&ids)
                .env("DOCKER_HOST", &host)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn ping(host: &str) -> std::result::Result<(), String> {
    let docker = bollard::Docker::connect_with_unix(host, 5, bollard::API_DEFAULT_VERSION)
        .map_err(|err| err.to_string())?;
    docker.ping().await.map(drop).map_err(|err| err.to_string())
}

impl Drop for DockerEngine {
    fn drop(&mut self) {
        if self.process.is_some() {
            self.remove_all_containers();
        }
        if let Some(mut process) = self.process.take() {
            process.stop_leader_first();
        }
        // A daemon that died uncleanly leaves its network namespace files
        // bind-mounted; detach them so the directory can go.
        for entry in std::fs::read_dir(self.exec_root.join("netns")).into_iter().flatten().flatten()
        {
            if let Ok(path) = std::ffi::CString::new(entry.path().as_os_str().as_encoded_bytes()) {
                // SAFETY: `path` is a valid NUL-terminated string for the call's duration.
                unsafe {
                    libc::umount2(path.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.exec_root);
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            eprintln!("test bench: kept private dockerd dir {}", kept.display());
        }
    }
}
