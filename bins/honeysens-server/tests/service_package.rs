//! `honeysens-server service-package` end to end: a dynamically linked system binary is
//! packaged with the libraries `ldd` reports, the package passes the server's reader, and —
//! where Docker runs — `docker load` of the legacy layout gives a scratch image that runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use honeysens_core::package::{Limits, scan};
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_honeysens-server");

struct Cleanup {
    dir: PathBuf,
    image: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(i) = &self.image {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

#[test]
fn packages_a_dynamic_binary_that_runs_in_a_scratch_image() {
    let echo = ["/bin/echo", "/usr/bin/echo"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("echo exists");
    let rev = uuid_like();
    let mut guard = Cleanup {
        dir: std::env::temp_dir().join(format!("hs-pkg-cli-{rev}")),
        image: None,
    };
    std::fs::create_dir_all(&guard.dir).unwrap();
    let out = guard.dir.join("echo.tar");
    let res = Command::new(BIN)
        .args(["service-package", "--binary", echo])
        .args(["--name", "echo", "--repository", "honeysens/echo-test"])
        .args(["--revision", &rev, "--port", "7/tcp=7", "--legacy-layout"])
        .args(["--arg", "hello from scratch", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );

    // The server's reader accepts it, with libc and the loader inside.
    let bytes = std::fs::read(&out).unwrap();
    let scanned = scan(bytes.as_slice(), &Limits::default()).unwrap();
    assert_eq!(scanned.manifest.port_assignment["7/tcp"], 7);
    let mut names = Vec::new();
    let mut outer = tar::Archive::new(bytes.as_slice());
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().ends_with("layer.tar") {
            let mut layer = tar::Archive::new(&mut e);
            for f in layer.entries().unwrap() {
                names.push(f.unwrap().path().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert!(names.iter().any(|n| n == "bin/echo"), "{names:?}");
    assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");

    // Bad flags are usage errors (exit 2) before anything is written.
    let bad = Command::new(BIN)
        .args(["service-package", "--binary", echo, "--name", "echo"])
        .args(["--repository", "Bad/Repo", "--revision", "1", "-o"])
        .arg(guard.dir.join("bad.tar"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("repository"));

    let docker = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Docker must be available in CI"
        );
        println!("SKIPPED: docker is not available; the image was not run");
        return;
    }
    let tag = format!("honeysens/echo-test:{rev}");
    guard.image = Some(tag.clone());
    let load = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let run = Command::new("docker")
        .args(["run", "--rm", "--network", "none", &tag])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from scratch\n");
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}-{}", std::process::id(), t.subsec_nanos())
}
