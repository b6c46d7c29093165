//! Protobuf contracts -> prost messages and tonic server traits/clients (via tonic-prost-build
//! and a vendored protoc, so a new machine needs nothing installed), plus the file descriptor
//! set that gRPC reflection serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{CodegenError, GeneratedFile, Result, layout};

/// Every `.proto` file below `root/schema/proto`, relative to that folder, sorted.
fn proto_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let dir = base.join(rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| CodegenError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CodegenError::io(&dir, e))?;
            let rel_path = rel.join(entry.file_name());
            if entry.path().is_dir() {
                walk(base, &rel_path, out)?;
            } else if rel_path.extension().is_some_and(|e| e == "proto") {
                out.push(rel_path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&root.join(layout::PROTO_DIR), Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

/// Turns protoc's `path/file.proto:12:3: message` into a [`CodegenError::Schema`] whose file is
/// shown relative to the workspace root.
fn protoc_error(proto_root: &Path, message: &str) -> CodegenError {
    for line in message.lines() {
        let Some(idx) = line.find(".proto:") else {
            continue;
        };
        let file = &line[..idx + ".proto".len()];
        let file = file.rsplit(' ').next().unwrap_or(file);
        let mut rest = line[idx + ".proto:".len()..].splitn(3, ':');
        if let (Some(l), Some(c), Some(problem)) = (rest.next(), rest.next(), rest.next())
            && l.trim().parse::<u32>().is_ok()
            && c.trim().parse::<u32>().is_ok()
        {
            let rel = Path::new(file)
                .strip_prefix(proto_root)
                .unwrap_or(Path::new(file));
            return CodegenError::schema(
                Path::new(layout::PROTO_DIR).join(rel),
                format!("line {} column {}", l.trim(), c.trim()),
                problem.trim(),
            );
        }
    }
    CodegenError::schema(layout::PROTO_DIR, "protoc", message.trim())
}

/// Compiles the protos under `proto_root` into a fresh temporary folder and returns
/// `(generated rust files by name, descriptor set bytes)`.
pub fn compile(
    proto_root: &Path,
    protos: &[PathBuf],
) -> Result<(BTreeMap<String, String>, Vec<u8>)> {
    let tmp = std::env::temp_dir().join(format!(
        "shopmesh-codegen-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| CodegenError::io(&tmp, e))?;
    let result = compile_into(proto_root, protos, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn compile_into(
    proto_root: &Path,
    protos: &[PathBuf],
    tmp: &Path,
) -> Result<(BTreeMap<String, String>, Vec<u8>)> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(|e| {
        CodegenError::schema(
            layout::PROTO_DIR,
            "protoc",
            format!("vendored protoc unavailable: {e}"),
        )
    })?;
    let wkt = protoc_bin_vendored::include_path().map_err(|e| {
        CodegenError::schema(
            layout::PROTO_DIR,
            "protoc",
            format!("vendored includes unavailable: {e}"),
        )
    })?;
    let descriptor = tmp.join("descriptor.bin");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let files: Vec<PathBuf> = protos.iter().map(|p| proto_root.join(p)).collect();
    tonic_prost_build::configure()
        .out_dir(tmp)
        .file_descriptor_set_path(&descriptor)
        .emit_rerun_if_changed(false)
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &files, &[proto_root.to_path_buf(), wkt])
        .map_err(|e| protoc_error(proto_root, &e.to_string()))?;
    let mut generated = BTreeMap::new();
    for entry in std::fs::read_dir(tmp).map_err(|e| CodegenError::io(tmp, e))? {
        let entry = entry.map_err(|e| CodegenError::io(tmp, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| CodegenError::io(entry.path(), e))?;
            generated.insert(name, text);
        }
    }
    let bytes = std::fs::read(&descriptor).map_err(|e| CodegenError::io(&descriptor, e))?;
    Ok((generated, bytes))
}

/// The field number of the `(shopmesh.auth.v1.access)` method option.
const ACCESS_OPTION: u32 = 50101;

/// One value of a protobuf message on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of an encoded message, in order. A few lines of the wire format instead of a
/// descriptor library: prost drops the custom options this reads.
fn wire_fields(mut buf: &[u8]) -> std::result::Result<Vec<(u32, Wire<'_>)>, String> {
    fn varint(buf: &mut &[u8]) -> std::result::Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut buf)?),
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                buf = buf.get(n..).ok_or("truncated fixed field")?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "length out of range")?;
                let (bytes, rest) = (buf.get(..len).ok_or("truncated field")?, &buf[len..]);
                buf = rest;
                Wire::Bytes(bytes)
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn wire_string(fields: &[(u32, Wire<'_>)], number: u32) -> String {
    fields
        .iter()
        .find_map(|(n, v)| match v {
            Wire::Bytes(b) if *n == number => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Who may call each method of the contracts' services (`(shopmesh.auth.v1.access)`), by gRPC
/// path (`/package.Service/Method`): `None` for public, else the role a caller needs. Every
/// method must declare it.
pub fn method_access(descriptor: &[u8]) -> Result<Vec<(String, Option<&'static str>)>> {
    let err = |at: &str, problem: String| CodegenError::schema(layout::PROTO_DIR, at, problem);
    let bad = |e: String| err("descriptor set", e);
    let mut access = Vec::new();
    for (_, file) in wire_fields(descriptor).map_err(bad)? {
        let Wire::Bytes(file) = file else { continue };
        let file = wire_fields(file).map_err(bad)?;
        let name = wire_string(&file, 1);
        if name.starts_with("google/") {
            continue;
        }
        let package = wire_string(&file, 2);
        for (n, service) in &file {
            let (6, Wire::Bytes(service)) = (n, service) else {
                continue;
            };
            let service = wire_fields(service).map_err(bad)?;
            let service_name = wire_string(&service, 1);
            for (n, method) in &service {
                let (2, Wire::Bytes(method)) = (n, method) else {
                    continue;
                };
                let method = wire_fields(method).map_err(bad)?;
                let method_name = wire_string(&method, 1);
                let declared = method
                    .iter()
                    .filter_map(|(n, v)| match v {
                        Wire::Bytes(options) if *n == 4 => Some(options),
                        _ => None,
                    })
                    .filter_map(|options| wire_fields(options).ok())
                    .flatten()
                    .find_map(|(n, v)| match v {
                        Wire::Varint(value) if n == ACCESS_OPTION => Some(value),
                        _ => None,
                    });
                let at = format!("{name}: rpc {service_name}.{method_name}");
                let role = match declared {
                    Some(1) => None,
                    Some(2) => Some("User"),
                    Some(3) => Some("Admin"),
                    _ => {
                        return Err(err(
                            &at,
                            "declare who may call it: option (shopmesh.auth.v1.access) = ACCESS_PUBLIC, ACCESS_USER or ACCESS_ADMIN".into(),
                        ));
                    }
                };
                access.push((format!("/{package}.{service_name}/{method_name}"), role));
            }
        }
    }
    Ok(access)
}

/// Writes `pub mod` blocks nesting every package under `prefix` (packages sharing a prefix
/// share its modules), each including its generated file.
fn write_modules(out: &mut String, tree: &BTreeMap<Vec<String>, String>, prefix: &[String]) {
    let indent = "    ".repeat(prefix.len());
    if let Some(file) = tree.get(prefix) {
        out.push_str(&format!("{indent}include!(\"gen/{file}\");\n"));
    }
    let children: std::collections::BTreeSet<&String> = tree
        .keys()
        .filter(|p| p.len() > prefix.len() && p.starts_with(prefix))
        .map(|p| &p[prefix.len()])
        .collect();
    for child in children {
        out.push_str(&format!("{indent}pub mod {child} {{\n"));
        let mut deeper = prefix.to_vec();
        deeper.push(child.clone());
        write_modules(out, tree, &deeper);
        out.push_str(&format!("{indent}}}\n"));
    }
}

/// The guard that enforces the access table on a tonic server.
const GUARD: &str = include_str!("proto_guard.rs.txt");

/// Generates the `proto` crate's sources from every `.proto` under `schema/proto`.
pub fn generate_crate(root: &Path) -> Result<Vec<GeneratedFile>> {
    let protos = proto_files(root)?;
    if protos.is_empty() {
        return Err(CodegenError::schema(
            layout::PROTO_DIR,
            "folder",
            "no .proto files",
        ));
    }
    let (generated, descriptor) = compile(&root.join(layout::PROTO_DIR), &protos)?;
    let out = Path::new(layout::PROTO_OUT);
    let sources = protos
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut files = Vec::new();
    let mut tree: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (name, text) in &generated {
        let package = name.trim_end_matches(".rs");
        tree.insert(
            package.split('.').map(str::to_owned).collect(),
            name.clone(),
        );
        files.push(GeneratedFile::text(
            out.join("gen").join(name),
            format!(
                "{}{text}",
                crate::header(&format!("{} ({sources})", layout::PROTO_DIR))
            ),
        ));
    }
    let access = method_access(&descriptor)?;
    files.push(GeneratedFile {
        path: out.join("gen").join("descriptor.bin"),
        contents: descriptor,
    });
    files.push(GeneratedFile::text(
        out.join("guard.rs"),
        format!(
            "{}{GUARD}",
            crate::header(&format!("{} ({sources})", layout::PROTO_DIR))
        ),
    ));
    let mut lib = crate::header(&format!("{} ({sources})", layout::PROTO_DIR));
    lib.push_str("//! Generated gRPC contracts: prost messages, tonic servers and clients, one module per\n//! protobuf package, and the file descriptor set for server reflection.\n\n");
    lib.push_str("/// Encoded `FileDescriptorSet` of every contract, for tonic-reflection.\n");
    lib.push_str(
        "pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(\"gen/descriptor.bin\");\n",
    );
    lib.push_str("\n#[rustfmt::skip]\npub mod guard;\n\n/// Who may call each method, as its `(shopmesh.auth.v1.access)` option says, by gRPC path:\n/// `None` for anyone, else the role a caller's token must carry.\n#[rustfmt::skip]\npub const METHOD_ACCESS: &[(&str, Option<shopmesh_identity::Role>)] = &[\n");
    for (path, role) in &access {
        let role = role.map_or("None".to_owned(), |r| {
            format!("Some(shopmesh_identity::Role::{r})")
        });
        lib.push_str(&format!("    (\"{path}\", {role}),\n"));
    }
    lib.push_str("];\n");
    lib.push('\n');
    write_modules(&mut lib, &tree, &[]);
    files.push(GeneratedFile::text(out.join("lib.rs"), lib));
    Ok(files)
}
