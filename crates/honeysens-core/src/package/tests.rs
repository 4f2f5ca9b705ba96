#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::Error;
use crate::model::Architecture;
use std::collections::BTreeMap;

#[derive(Default)]
struct MemSink {
    blobs: BTreeMap<String, Vec<u8>>,
}

struct MemUpload<'a> {
    sink: &'a mut MemSink,
    buf: Vec<u8>,
}

impl BlobSink for MemSink {
    fn begin(&mut self) -> crate::Result<Box<dyn SinkUpload + '_>> {
        Ok(Box::new(MemUpload {
            sink: self,
            buf: vec![],
        }))
    }
}

impl SinkUpload for MemUpload<'_> {
    fn write(&mut self, chunk: &[u8]) -> crate::Result<()> {
        self.buf.extend_from_slice(chunk);
        Ok(())
    }
    fn finish(self: Box<Self>, sha256: &str) -> crate::Result<()> {
        assert_eq!(oci::digest_of(&self.buf), format!("sha256:{sha256}"));
        self.sink.blobs.insert(sha256.to_owned(), self.buf);
        Ok(())
    }
}

fn manifest(archs: &[Architecture]) -> PackageManifest {
    PackageManifest {
        name: "ssh".into(),
        repository: "honeysens/ssh".into(),
        description: "SSH honeypot".into(),
        architectures: archs.to_vec(),
        revision: "1.0.0".into(),
        revision_description: "first".into(),
        port_assignment: [("2222/tcp".to_owned(), 22)].into(),
        catch_all: false,
        raw_network_access: false,
    }
}

fn image(arch: Architecture) -> ImageSpec {
    ImageSpec {
        architecture: arch,
        files: vec![RootfsFile {
            path: "/bin/honeypot".into(),
            mode: 0o755,
            contents: format!("binary for {arch}").repeat(1000).into_bytes(),
        }],
        entrypoint: vec!["/bin/honeypot".into()],
        cmd: vec![],
        env: vec!["A=b".into()],
        exposed_ports: vec!["2222/tcp".into()],
    }
}

fn builder(archs: &[Architecture]) -> PackageBuilder {
    PackageBuilder::new(manifest(archs), archs.iter().map(|a| image(*a)).collect())
}

fn fields(e: Error) -> Vec<(String, &'static str)> {
    match e {
        Error::Invalid(v) => v.0.into_iter().map(|f| (f.field, f.code)).collect(),
        other => panic!("not a validation error: {other}"),
    }
}

fn roundtrip(bytes: &[u8]) -> crate::Result<(ScannedPackage, Vec<StoredImage>, MemSink)> {
    let limits = Limits::default();
    let scanned = scan(bytes, &limits)?;
    let mut sink = MemSink::default();
    let stored = scanned.store(bytes, &mut sink, &limits)?;
    Ok((scanned, stored, sink))
}

#[test]
fn every_layout_and_style_round_trips() {
    let archs = [Architecture::Amd64, Architecture::Armhf];
    for layout in [ArchiveLayout::Oci, ArchiveLayout::DockerLegacy] {
        for style in [ManifestStyle::Json, ManifestStyle::MetadataXml] {
            let mut b = builder(if style == ManifestStyle::Json {
                &archs
            } else {
                &archs[..1]
            });
            b.layout = layout;
            b.style = style;
            let mut bytes = b.write(Vec::new()).unwrap();
            for gz in [false, true] {
                if gz {
                    let mut e = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                    std::io::Write::write_all(&mut e, &bytes).unwrap();
                    bytes = e.finish().unwrap();
                }
                let (scanned, stored, sink) = roundtrip(&bytes).unwrap();
                assert_eq!(scanned.manifest, b.manifest, "{layout:?} {style:?}");
                assert_eq!(stored.len(), b.images.len());
                for s in &stored {
                    // Manifest, config and gzip layer are in the sink under their digests.
                    let hex = oci::sha256_hex(&s.manifest_digest).unwrap();
                    assert_eq!(sink.blobs[hex], s.manifest_bytes);
                    let layer = &s.manifest.layers[0];
                    assert_eq!(layer.media_type, oci::MEDIA_TYPE_LAYER_GZIP);
                    let gz = &sink.blobs[oci::sha256_hex(&layer.digest).unwrap()];
                    assert_eq!(gz.len() as u64, layer.size);
                    let mut tar = Vec::new();
                    std::io::Read::read_to_end(
                        &mut flate2::read::GzDecoder::new(gz.as_slice()),
                        &mut tar,
                    )
                    .unwrap();
                    assert_eq!(oci::digest_of(&tar), s.diff_ids[0]);
                    assert!(
                        sink.blobs
                            .contains_key(oci::sha256_hex(&s.manifest.config.digest).unwrap())
                    );
                }
            }
        }
    }
}

/// Rewrites the package's entries with `f` and scans + stores the result.
fn tampered(
    b: &PackageBuilder,
    f: impl FnOnce(&mut Vec<(String, Vec<u8>)>),
) -> crate::Result<(ScannedPackage, Vec<StoredImage>, MemSink)> {
    let mut entries = b.entries().unwrap();
    f(&mut entries);
    let bytes = write_entries(Vec::new(), &entries).unwrap();
    roundtrip(&bytes)
}

#[test]
fn broken_packages_are_refused_per_field() {
    let b = builder(&[Architecture::Amd64]);
    let mut legacy = b.clone();
    legacy.layout = ArchiveLayout::DockerLegacy;

    // Missing layer (both layouts).
    for b in [&b, &legacy] {
        let f = fields(
            tampered(b, |e| {
                e.retain(|(p, d)| !(p.ends_with("layer.tar") || d.starts_with(&[0x1f, 0x8b])))
            })
            .err()
            .unwrap(),
        );
        assert!(
            f.contains(&("image.layers.0".into(), "missing_layer")),
            "{f:?}"
        );
    }

    // A layer whose bytes differ from its digest.
    for b in [&b, &legacy] {
        let f = fields(
            tampered(b, |e| {
                for (p, d) in e.iter_mut() {
                    if p.ends_with("layer.tar") {
                        let n = d.len();
                        d[n / 3] ^= 0x55;
                    } else if d.starts_with(&[0x1f, 0x8b]) {
                        // Re-compress different content under the old name.
                        let mut enc = flate2::write::GzEncoder::new(Vec::new(), Default::default());
                        std::io::Write::write_all(&mut enc, b"not the layer").unwrap();
                        *d = enc.finish().unwrap();
                    }
                }
            })
            .err()
            .unwrap(),
        );
        assert_eq!(f, vec![("image.layers.0".into(), "digest_mismatch")]);
    }

    // The image is for arm64, the manifest says amd64.
    let mut wrong = builder(&[Architecture::Amd64]);
    wrong.images[0].architecture = Architecture::Arm64;
    let f = fields(roundtrip(&wrong.write(Vec::new()).unwrap()).err().unwrap());
    assert_eq!(
        f,
        vec![("image.architecture".into(), "architecture_mismatch")]
    );

    // A bad manifest field.
    let mut bad = builder(&[Architecture::Amd64]);
    bad.manifest.port_assignment.insert("x/tcp".into(), 23);
    bad.manifest.repository = "Bad Repo".into();
    let f = fields(roundtrip(&bad.write(Vec::new()).unwrap()).err().unwrap());
    assert!(
        f.contains(&("repository".into(), "invalid_repository")),
        "{f:?}"
    );
    assert!(
        f.contains(&("port_assignment.x/tcp".into(), "invalid_port")),
        "{f:?}"
    );

    // No manifest; no image; not a tar at all.
    let f = fields(
        tampered(&b, |e| e.retain(|(p, _)| p != "honeysens.json"))
            .err()
            .unwrap(),
    );
    assert_eq!(f, vec![("package.manifest".into(), "missing")]);
    let f = fields(
        tampered(&b, |e| e.retain(|(p, _)| p == "honeysens.json"))
            .err()
            .unwrap(),
    );
    assert_eq!(f, vec![("image".into(), "missing")]);
    let f = fields(roundtrip(b"this is not a tar archive, just some text that is long enough to fill a header block maybe").err().unwrap());
    assert_eq!(f[0].0, "package");
}

#[test]
fn limits_hold() {
    let b = builder(&[Architecture::Amd64]);
    let bytes = b.write(Vec::new()).unwrap();
    let limits = Limits {
        max_unpacked: 4096,
        ..Limits::default()
    };
    let f = fields(scan(bytes.as_slice(), &limits).err().unwrap());
    assert_eq!(f, vec![("package".into(), "too_large")]);
}

#[test]
fn damaged_input_never_panics() {
    // A cheap stand-in for the fuzz target: truncations and bit flips of a real package.
    let mut legacy = builder(&[Architecture::Amd64]);
    legacy.layout = ArchiveLayout::DockerLegacy;
    for b in [builder(&[Architecture::Amd64]), legacy] {
        let bytes = b.write(Vec::new()).unwrap();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for i in 0..300 {
            let mut d = bytes.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % d.len();
            if i % 3 == 0 {
                d.truncate(at);
            } else {
                d[at] ^= 1 << (seed % 8);
            }
            let _ = roundtrip(&d);
        }
    }
}
