//! `honeysens-server service-package`: wraps a honeypot binary into a service package (a
//! `FROM scratch` image built without Docker, plus `honeysens.json`), ready for
//! `POST /api/services/packages`.
//!
//! A dynamically linked binary gets the shared libraries `ldd` reports and the dynamic loader
//! copied in at their paths so it runs in a scratch image; release builds should be static
//! (`-C target-feature=+crt-static`), which needs nothing besides the binary.

use crate::error::AppError;
use honeysens_core::model::Architecture;
use honeysens_core::package::{
    ArchiveLayout, ImageSpec, PackageBuilder, PackageManifest, RootfsFile,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `service-package`.
#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// The honeypot executable; becomes `/bin/<file name>` and the entrypoint.
    #[arg(long, value_name = "PATH")]
    pub binary: PathBuf,
    /// Service name (container name on sensors).
    #[arg(long)]
    pub name: String,
    /// Image repository, e.g. `honeysens/ssh`.
    #[arg(long)]
    pub repository: String,
    /// Revision label.
    #[arg(long)]
    pub revision: String,
    /// Service description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// What changed in this revision.
    #[arg(long, default_value = "")]
    pub revision_description: String,
    /// Port assignment `<container port>/<tcp|udp>=<sensor port>`; repeatable.
    #[arg(long = "port", value_name = "PORT/PROTO=SENSOR_PORT")]
    pub ports: Vec<String>,
    /// The service takes every connection no other service takes.
    #[arg(long)]
    pub catch_all: bool,
    /// The service runs in the host's network namespace.
    #[arg(long)]
    pub raw_network_access: bool,
    /// Environment variable `KEY=value` of the image; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Argument passed to the binary (image `Cmd`); repeatable.
    #[arg(long = "arg", value_name = "ARG")]
    pub args: Vec<String>,
    /// Architecture the binary is built for [default: this machine's].
    #[arg(long, value_name = "amd64|arm64|armhf")]
    pub arch: Option<String>,
    /// Write the legacy `docker save` layout instead of the OCI layout.
    #[arg(long)]
    pub legacy_layout: bool,
    /// Do not add the libraries `ldd` reports (the binary must be static).
    #[arg(long)]
    pub no_libs: bool,
    /// Output file.
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,
}

fn host_arch() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::Amd64),
        "aarch64" => Some(Architecture::Arm64),
        "arm" => Some(Architecture::Armhf),
        _ => None,
    }
}

/// Parses `2222/tcp=22` pairs.
fn parse_ports(ports: &[String]) -> Result<BTreeMap<String, u16>, AppError> {
    let mut map = BTreeMap::new();
    for p in ports {
        let (container, sensor) = p.split_once('=').ok_or_else(|| {
            AppError::usage(format!(
                "--port {p}: expected <port>/<tcp|udp>=<sensor port>"
            ))
        })?;
        let sensor: u16 = sensor
            .parse()
            .map_err(|_| AppError::usage(format!("--port {p}: bad sensor port")))?;
        map.insert(container.to_owned(), sensor);
    }
    Ok(map)
}

/// Paths of the shared libraries and loader `ldd` lists for `binary` (none for a static one).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, AppError> {
    let out = match std::process::Command::new("ldd").arg(binary).output() {
        Ok(o) => o,
        Err(e) => return Err(AppError::with("cannot run ldd", &e)),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable" / "statically linked": nothing to add.
        return Ok(vec![]);
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("statically linked") {
            return Ok(vec![]);
        }
        // `libc.so.6 => /lib/…/libc.so.6 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`;
        // `linux-vdso.so.1 (0x…)` lives in the kernel and has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        } else if line.contains("not found") {
            return Err(AppError::runtime(format!(
                "{}: ldd cannot find {line}",
                binary.display()
            )));
        }
    }
    Ok(libs)
}

/// Builds the package and writes it to `args.output`.
pub fn service_package(args: &PackageArgs) -> Result<(), AppError> {
    let arch = match &args.arch {
        Some(a) => Architecture::parse(a)
            .map_err(|_| AppError::usage("--arch must be amd64, arm64 or armhf"))?,
        None => host_arch().ok_or_else(|| {
            AppError::usage("cannot tell this machine's architecture; pass --arch")
        })?,
    };
    let file_name = args
        .binary
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| AppError::usage("--binary must name a file"))?
        .to_owned();
    let contents = std::fs::read(&args.binary)
        .map_err(|e| AppError::with(format!("cannot read {}", args.binary.display()), &e))?;
    let target = format!("/bin/{file_name}");
    let mut files = vec![RootfsFile {
        path: target.clone(),
        mode: 0o755,
        contents,
    }];
    if !args.no_libs {
        for lib in shared_libraries(&args.binary)? {
            // Read through symlinks: the image gets the real bytes at the path ldd printed.
            let contents = std::fs::read(&lib)
                .map_err(|e| AppError::with(format!("cannot read {}", lib.display()), &e))?;
            files.push(RootfsFile {
                path: lib.to_string_lossy().into_owned(),
                mode: 0o755,
                contents,
            });
        }
    }
    let port_assignment = parse_ports(&args.ports)?;
    let manifest = PackageManifest {
        name: args.name.clone(),
        repository: args.repository.clone(),
        description: args.description.clone(),
        architectures: vec![arch],
        revision: args.revision.clone(),
        revision_description: args.revision_description.clone(),
        port_assignment: port_assignment.clone(),
        catch_all: args.catch_all,
        raw_network_access: args.raw_network_access,
    };
    // The same checks the server runs, so a bad flag fails here and not at upload.
    manifest
        .validate()
        .map_err(|e| AppError::usage(format!("invalid package description: {e}")))?;
    let mut builder = PackageBuilder::new(
        manifest,
        vec![ImageSpec {
            architecture: arch,
            files,
            entrypoint: vec![target],
            cmd: args.args.clone(),
            env: args.env.clone(),
            exposed_ports: port_assignment.into_keys().collect(),
        }],
    );
    if args.legacy_layout {
        builder.layout = ArchiveLayout::DockerLegacy;
    }
    let out = std::fs::File::create(&args.output)
        .map_err(|e| AppError::with(format!("cannot create {}", args.output.display()), &e))?;
    let out = builder
        .write(std::io::BufWriter::new(out))
        .map_err(|e| AppError::with("cannot write the package", &e))?;
    out.into_inner()
        .map_err(|e| AppError::runtime(format!("cannot write {}: {e}", args.output.display())))?
        .sync_all()
        .map_err(|e| AppError::with(format!("cannot write {}", args.output.display()), &e))?;
    Ok(())
}
